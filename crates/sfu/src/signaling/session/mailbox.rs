//! Where the room delivers a session's share of its effects: messages straight to the
//! client's outbox (no hop through the session's task), wake-ups and orders to the task.
use std::sync::Arc;

use roomcast_protocol::ServerMessage;
use tokio::sync::{mpsc, Notify};

use crate::egress::Egress;
use crate::room::{Mailbox, Order};
use crate::signaling::outbox::Outbox;

pub(super) struct SessionMailbox {
    pub outbox: Outbox,
    pub resubscribe: Arc<Notify>,
    pub orders: mpsc::UnboundedSender<Order>,
    /// The session's connection as a subscriber, for the admin API.
    pub egress: Arc<Egress>,
}

impl Mailbox for SessionMailbox {
    fn tell(&self, msg: ServerMessage) {
        self.outbox.send(msg);
    }

    fn resubscribe(&self) {
        self.resubscribe.notify_one();
    }

    fn order(&self, order: Order) {
        let _ = self.orders.send(order);
    }

    fn egress(&self) -> Option<Arc<Egress>> {
        Some(Arc::clone(&self.egress))
    }
}
