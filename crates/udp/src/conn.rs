//! What webrtc-ice's agent reads from and writes to: one connection's view of the mux.
use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::sync::Weak;

use async_trait::async_trait;
use webrtc_util::{Conn, Error};

use crate::mux::{ConnRef, UdpMux};

type Result<T> = std::result::Result<T, Error>;

pub(crate) struct MuxConn {
    conn: ConnRef,
    /// Weak: the agent's candidates hold this, and must not keep the mux alive.
    mux: Weak<UdpMux>,
    local: SocketAddr,
}

impl MuxConn {
    pub(crate) fn new(conn: ConnRef, mux: Weak<UdpMux>, local: SocketAddr) -> MuxConn {
        MuxConn { conn, mux, local }
    }
}

fn not_connected() -> Error {
    io::Error::other("a muxed connection has no single remote").into()
}

#[async_trait]
impl Conn for MuxConn {
    async fn connect(&self, _addr: SocketAddr) -> Result<()> {
        Err(not_connected())
    }

    async fn recv(&self, _buf: &mut [u8]) -> Result<usize> {
        Err(not_connected())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.conn.queue().pop_into(buf).await.map_err(|e| match e {
            None => Error::ErrUseClosedNetworkConn,
            Some(_) => Error::ErrBufferShort,
        })
    }

    async fn send(&self, _buf: &[u8]) -> Result<usize> {
        Err(not_connected())
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> Result<usize> {
        let mux = self.mux.upgrade().ok_or(Error::ErrUseClosedNetworkConn)?;
        mux.send_from(&self.conn, buf, target).await?;
        Ok(buf.len())
    }

    fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> Result<()> {
        match self.mux.upgrade() {
            Some(mux) => mux.remove(&self.conn),
            None => self.conn.queue().close(),
        }
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}
