pub mod full_intra_request;
pub mod picture_loss_indication;
pub mod receiver_estimated_maximum_bitrate;
pub mod slice_loss_indication;
