pub mod rapid_resynchronization_request;
pub mod transport_layer_cc;
pub mod transport_layer_nack;
