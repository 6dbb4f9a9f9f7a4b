//! The store on a Redis server.
//!
//! Keys (`PREFIX` is `roomcast` unless configured):
//! - `PREFIX:node:ID`: a hash, the node's record ([`NodeInfo::to_fields`]), with a TTL;
//! - `PREFIX:room:NAME`: a string, the owning node's id, with a TTL (the lease).
//!
//! Claims, holds and releases are Lua scripts, so each is atomic: two nodes claiming one
//! room see the same winner. The scripts read node keys they build from their arguments,
//! which a single Redis server (or a primary with replicas) allows and Redis Cluster does
//! not; the cluster's state is small enough for one server.
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, ErrorKind, RedisError, Script};

use super::{LostRoom, Store, StoreError};
use crate::node::NodeInfo;

/// The longest any store call may take before it counts as unreachable. A node must keep
/// serving while Redis hangs, and placements must be refused quickly, not after the OS's
/// connect timeout.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// Returns the live owner, or claims the room for a serving candidate.
/// KEYS[1] room key; ARGV: node key prefix, candidate, lease (ms).
const CLAIM: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner and redis.call('EXISTS', ARGV[1] .. owner) == 1 then
  return owner
end
local node = ARGV[1] .. ARGV[2]
if redis.call('HGET', node, 'state') ~= 'serving' then
  return false
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('HINCRBY', node, 'rooms', 1)
return ARGV[2]
";

/// The room's owner if its record is there. KEYS[1] room key; ARGV[1] node key prefix.
const OWNER: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner and redis.call('EXISTS', ARGV[1] .. owner) == 1 then
  return owner
end
return false
";

/// Extends or retakes the leases; for each key, '' or the live node that holds it instead.
/// KEYS room keys; ARGV: node key prefix, owner, lease (ms).
const HOLD: &str = r"
local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner and owner ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. owner) == 1 then
    lost[i] = owner
  else
    redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
    lost[i] = ''
  end
end
return lost
";

/// Deletes the room key if `owner` holds it. KEYS[1] room key; ARGV[1] owner.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Rooms per HOLD call, so one call never blocks Redis for long.
const HOLD_BATCH: usize = 256;

pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    claim: Script,
    owner: Script,
    hold: Script,
    release: Script,
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[:password@]host:port[/db]`), its keys under
    /// `prefix`. Does not wait for Redis: a node starts while Redis is down and registers
    /// once it is up.
    pub fn new(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Invalid(format!("bad Redis URL: {e}")))?;
        // Retry a lost connection quickly and give up fast: the heartbeat tries again
        // every tick, and a placement must not wait on a dead server.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(1000)))
            .set_response_timeout(Some(Duration::from_millis(1000)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(to_store_error)?;
        Ok(RedisStore {
            connection,
            prefix: prefix.to_owned(),
            claim: Script::new(CLAIM),
            owner: Script::new(OWNER),
            hold: Script::new(HOLD),
            release: Script::new(RELEASE),
        })
    }

    fn node_prefix(&self) -> String {
        format!("{}:node:", self.prefix)
    }

    fn node_key(&self, id: &str) -> String {
        format!("{}:node:{id}", self.prefix)
    }

    fn room_key(&self, room: &str) -> String {
        format!("{}:room:{room}", self.prefix)
    }

    /// Keys matching `pattern`, by SCAN (never KEYS, which blocks the server).
    async fn scan(&self, pattern: String) -> Result<Vec<String>, StoreError> {
        let mut con = self.connection.clone();
        bounded(async move {
            let mut keys = Vec::new();
            let mut iter = con.scan_match::<_, String>(pattern).await?;
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
            Ok(keys)
        })
        .await
    }
}

/// Runs a call with [`CALL_TIMEOUT`].
async fn bounded<T>(call: impl Future<Output = Result<T, RedisError>>) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(to_store_error),
        Err(_) => Err(StoreError::Unreachable(format!(
            "no answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

fn to_store_error(e: RedisError) -> StoreError {
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => StoreError::Invalid(e.to_string()),
        _ => StoreError::Unreachable(e.to_string()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Store for RedisStore {
    async fn register(&self, node: &NodeInfo, ttl: Duration) -> Result<(), StoreError> {
        let key = self.node_key(&node.id);
        let mut con = self.connection.clone();
        // One transaction: readers never see a record without its TTL or half written.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&key)
            .ignore()
            .hset_multiple(&key, &node.to_fields())
            .ignore()
            .pexpire(&key, millis(ttl) as i64)
            .ignore();
        bounded(pipe.query_async::<()>(&mut con)).await
    }

    async fn deregister(&self, id: &str) -> Result<(), StoreError> {
        let mut con = self.connection.clone();
        bounded(con.del::<_, ()>(self.node_key(id))).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let keys = self.scan(format!("{}*", self.node_prefix())).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.hgetall(key);
        }
        let mut con = self.connection.clone();
        let records: Vec<HashMap<String, String>> = bounded(pipe.query_async(&mut con)).await?;
        Ok(records
            .iter()
            // A record that expired between SCAN and HGETALL is empty; a malformed one
            // is not ours to use.
            .filter_map(|fields| {
                let node = NodeInfo::from_fields(fields);
                if node.is_none() && !fields.is_empty() {
                    tracing::warn!("skipping a malformed node record in the cluster store");
                }
                node
            })
            .collect())
    }

    async fn claim_room(
        &self,
        room: &str,
        candidate: &str,
        lease: Duration,
    ) -> Result<Option<String>, StoreError> {
        let mut con = self.connection.clone();
        let mut call = self.claim.key(self.room_key(room));
        call.arg(self.node_prefix())
            .arg(candidate)
            .arg(millis(lease));
        bounded(call.invoke_async(&mut con)).await
    }

    async fn room_owner(&self, room: &str) -> Result<Option<String>, StoreError> {
        let mut con = self.connection.clone();
        let mut call = self.owner.key(self.room_key(room));
        call.arg(self.node_prefix());
        bounded(call.invoke_async(&mut con)).await
    }

    async fn hold_rooms(
        &self,
        owner: &str,
        rooms: &[String],
        lease: Duration,
    ) -> Result<Vec<LostRoom>, StoreError> {
        let mut lost = Vec::new();
        for batch in rooms.chunks(HOLD_BATCH) {
            let mut call = self.hold.prepare_invoke();
            for room in batch {
                call.key(self.room_key(room));
            }
            call.arg(self.node_prefix()).arg(owner).arg(millis(lease));
            let mut con = self.connection.clone();
            let holders: Vec<String> = bounded(call.invoke_async(&mut con)).await?;
            if holders.len() != batch.len() {
                return Err(StoreError::Invalid(format!(
                    "held {} rooms, got {} answers",
                    batch.len(),
                    holders.len()
                )));
            }
            lost.extend(
                batch
                    .iter()
                    .zip(holders)
                    .filter(|(_, holder)| !holder.is_empty())
                    .map(|(room, holder)| LostRoom {
                        room: room.clone(),
                        owner: holder,
                    }),
            );
        }
        Ok(lost)
    }

    async fn release_room(&self, room: &str, owner: &str) -> Result<bool, StoreError> {
        let mut con = self.connection.clone();
        let mut call = self.release.key(self.room_key(room));
        call.arg(owner);
        let deleted: u32 = bounded(call.invoke_async(&mut con)).await?;
        Ok(deleted == 1)
    }

    async fn rooms(&self) -> Result<Vec<(String, String)>, StoreError> {
        let room_prefix = self.room_key("");
        let keys = self.scan(format!("{room_prefix}*")).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let live: HashSet<String> = self.nodes().await?.into_iter().map(|n| n.id).collect();
        let mut con = self.connection.clone();
        let owners: Vec<Option<String>> = bounded(con.mget(&keys)).await?;
        Ok(keys
            .iter()
            .zip(owners)
            .filter_map(|(key, owner)| {
                let owner = owner.filter(|o| live.contains(o))?;
                Some((key.strip_prefix(&room_prefix)?.to_owned(), owner))
            })
            .collect())
    }
}
