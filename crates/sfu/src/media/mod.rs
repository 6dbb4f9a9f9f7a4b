//! The media path, in the order a packet travels: a publisher's [`published_track`] reads
//! it and hands it to each subscriber's [`down_track`], which rewrites the header
//! ([`rtp_munger`], [`header_extensions`], [`codec_map`]) and sends it.
pub mod codec_map;
pub mod down_track;
pub mod header_extensions;
pub mod keyframe_requester;
pub mod packet_cache;
pub mod published_track;
pub mod rtp_munger;
pub mod subscriber_rtcp;
