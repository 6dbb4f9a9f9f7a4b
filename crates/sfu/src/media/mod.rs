//! The media path, in the order a packet travels: a publisher's [`published_track`] reads
//! it and hands it to each subscriber's [`down_track`], which picks the simulcast layer
//! ([`layer_selector`]), rewrites the header ([`rtp_munger`], [`header_extensions`],
//! [`codec_map`]) and sends it.
pub mod allocator;
pub mod audio_level;
pub mod codec_map;
pub mod down_track;
pub mod dynacast;
pub mod fan_out;
pub mod header_extensions;
pub mod keyframe_requester;
pub mod layer_control;
pub mod layer_rates;
pub mod layer_selector;
pub mod packet_cache;
pub mod presenter;
pub mod published_track;
pub mod red;
pub mod retransmission;
pub mod rtp_munger;
pub mod subscriber_rtcp;
