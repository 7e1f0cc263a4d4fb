//! What every member replicates: the members' addresses and the service's state machine.
//!
//! [`Replica`] wraps the service's [`StateMachine`] and is itself one, so the driver runs it
//! like any machine. A log entry's command is a [`NodeCommand`]: one tag byte, then either the
//! machine's own command bytes (tag `0`) or a member's addresses (tag `1`, postcard's encoding
//! of `(id, raft_addr, http_addr)`). Addresses go through the log so that every member can
//! reach a server that joins later, whatever machine the node runs. A snapshot is the address
//! table (postcard's encoding of a map from id to `(raft_addr, http_addr)`), then the
//! machine's snapshot.
//!
//! A `SetAddress` whose addresses [`check_member_address`] refuses (id 0, a Raft address that
//! is not a unicast `IP:port` literal, an HTTP address that is not `host:port`) applies as
//! [`NodeOutput::Invalid`] and changes nothing: the member keeps the address it had. The
//! verdict depends on the entry's bytes alone, so every replica reaches the same one, and a
//! committed entry can never bind a member to an address nobody can send to.

use std::collections::BTreeMap;

use raft_core::{BadSnapshot, LogIndex, StateMachine};
use serde::{Deserialize, Serialize};

use crate::member_address::check_member_address;

/// A log entry's command: the machine's, or the node's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeCommand<C> {
    /// A command of the service's machine.
    Machine(C),
    /// Cluster metadata: where member `id` listens for peers and for clients. Applied only
    /// when [`check_member_address`] accepts it.
    SetAddress {
        id: u64,
        raft_addr: String,
        http_addr: String,
    },
}

/// The result of applying a [`NodeCommand`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeOutput<O> {
    /// The machine's output.
    Machine(O),
    /// `SetAddress` applied.
    AddressSet,
    /// The entry is no node command, or a `SetAddress` with a malformed address: nothing
    /// changed.
    Invalid,
}

/// The tag of a machine command.
pub const MACHINE_TAG: u8 = 0;
/// The tag of a `SetAddress`.
const ADDRESS_TAG: u8 = 1;

/// The members' addresses and the machine, replicated together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica<M> {
    machine: M,
    /// Member id -> (Raft address, HTTP address), from `SetAddress`.
    addresses: BTreeMap<u64, (String, String)>,
}

/// A [`Replica`]'s snapshot: a copy of the (small) address table and the machine's snapshot.
#[derive(Debug)]
pub struct ReplicaSnapshot<S> {
    addresses: BTreeMap<u64, (String, String)>,
    machine: S,
}

#[derive(Serialize, Deserialize)]
struct Address<'a> {
    id: u64,
    raft_addr: &'a str,
    http_addr: &'a str,
}

impl<M> Replica<M> {
    pub fn new(machine: M) -> Replica<M> {
        Replica {
            machine,
            addresses: BTreeMap::new(),
        }
    }

    /// The service's machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// Every member address recorded by `SetAddress`: id, Raft address, HTTP address.
    pub fn addresses(&self) -> impl Iterator<Item = (u64, &str, &str)> {
        self.addresses
            .iter()
            .map(|(&id, (raft, http))| (id, raft.as_str(), http.as_str()))
    }
}

/// Whether `bytes` can be a `SetAddress`, from the tag alone, so scanning a long log for
/// addresses decodes only the entries that may hold one.
#[must_use]
pub fn may_be_set_address(bytes: &[u8]) -> bool {
    bytes.first() == Some(&ADDRESS_TAG)
}

/// The bytes of a `SetAddress` (which do not depend on the machine).
#[must_use]
pub fn set_address_bytes(id: u64, raft_addr: &str, http_addr: &str) -> Vec<u8> {
    let mut out = vec![ADDRESS_TAG];
    let address = Address {
        id,
        raft_addr,
        http_addr,
    };
    // Serializing plain data into a growable Vec cannot fail.
    match postcard::to_extend(&address, out) {
        Ok(bytes) => out = bytes,
        Err(error) => panic!("address_encode_infallible: {error}"),
    }
    out
}

/// The bytes of a machine command as the log holds it: the tag, then `command`'s encoding.
pub fn machine_command_bytes<M: StateMachine>(command: &M::Command) -> Vec<u8> {
    let mut out = vec![MACHINE_TAG];
    M::encode_command(command, &mut out);
    out
}

impl<M: StateMachine> StateMachine for Replica<M> {
    type Command = NodeCommand<M::Command>;
    type Output = NodeOutput<M::Output>;
    type Query = M::Query;
    type Answer = M::Answer;
    type Snapshot = ReplicaSnapshot<M::Snapshot>;

    fn encode_command(command: &Self::Command, out: &mut Vec<u8>) {
        match command {
            NodeCommand::Machine(command) => {
                out.push(MACHINE_TAG);
                M::encode_command(command, out);
            }
            NodeCommand::SetAddress {
                id,
                raft_addr,
                http_addr,
            } => out.extend_from_slice(&set_address_bytes(*id, raft_addr, http_addr)),
        }
    }

    fn decode_command(bytes: &[u8]) -> Option<Self::Command> {
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            MACHINE_TAG => M::decode_command(rest).map(NodeCommand::Machine),
            ADDRESS_TAG => match postcard::take_from_bytes::<Address<'_>>(rest) {
                Ok((address, [])) => Some(NodeCommand::SetAddress {
                    id: address.id,
                    raft_addr: address.raft_addr.to_string(),
                    http_addr: address.http_addr.to_string(),
                }),
                _ => None,
            },
            _ => None,
        }
    }

    fn invalid_output() -> Self::Output {
        NodeOutput::Invalid
    }

    fn apply(&mut self, index: LogIndex, command: Self::Command) -> Self::Output {
        match command {
            NodeCommand::Machine(command) => {
                NodeOutput::Machine(self.machine.apply(index, command))
            }
            NodeCommand::SetAddress {
                id,
                raft_addr,
                http_addr,
            } => {
                if check_member_address(id, &raft_addr, &http_addr).is_err() {
                    return NodeOutput::Invalid;
                }
                self.addresses.insert(id, (raft_addr, http_addr));
                NodeOutput::AddressSet
            }
        }
    }

    /// A machine command whose bytes the machine refuses is the machine's invalid output
    /// (the proposer asked the machine), not the node's.
    fn apply_bytes(&mut self, index: LogIndex, bytes: &[u8]) -> Self::Output {
        match bytes.split_first() {
            Some((&MACHINE_TAG, rest)) => {
                NodeOutput::Machine(self.machine.apply_bytes(index, rest))
            }
            _ => match Self::decode_command(bytes) {
                Some(command) => self.apply(index, command),
                None => NodeOutput::Invalid,
            },
        }
    }

    fn query(&self, query: &Self::Query) -> Self::Answer {
        self.machine.query(query)
    }

    fn snapshot(&self) -> Self::Snapshot {
        ReplicaSnapshot {
            addresses: self.addresses.clone(),
            machine: self.machine.snapshot(),
        }
    }

    fn encode_snapshot(snapshot: &Self::Snapshot, out: &mut Vec<u8>) {
        match postcard::to_extend(&snapshot.addresses, std::mem::take(out)) {
            Ok(bytes) => *out = bytes,
            Err(error) => panic!("address_encode_infallible: {error}"),
        }
        M::encode_snapshot(&snapshot.machine, out);
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), BadSnapshot> {
        let (addresses, rest) = postcard::take_from_bytes::<BTreeMap<u64, (String, String)>>(bytes)
            .map_err(|_| BadSnapshot)?;
        self.machine.restore(rest)?;
        self.addresses = addresses;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::kv::{Command, KvStore, Output};

    fn set(id: u64, raft: &str, http: &str) -> Vec<u8> {
        Replica::<KvStore>::command_bytes(&NodeCommand::SetAddress {
            id,
            raft_addr: raft.to_string(),
            http_addr: http.to_string(),
        })
    }

    #[test]
    fn set_address_with_a_malformed_address_changes_nothing() {
        let mut replica = Replica::new(KvStore::new());
        assert_eq!(
            replica.apply_bytes(LogIndex(1), &set(2, "127.0.0.1:9001", "127.0.0.1:8001")),
            NodeOutput::AddressSet
        );
        let before = replica.clone();
        for bad in [
            set(2, "evil.example:9001", "127.0.0.1:8001"),
            set(2, "0.0.0.0:9001", "127.0.0.1:8001"),
            set(2, "127.0.0.1:9001", "not an address"),
            set(0, "127.0.0.1:9001", "127.0.0.1:8001"),
        ] {
            assert_eq!(replica.apply_bytes(LogIndex(2), &bad), NodeOutput::Invalid);
            assert_eq!(replica, before);
        }
        assert_eq!(
            replica.addresses().collect::<Vec<_>>(),
            vec![(2, "127.0.0.1:9001", "127.0.0.1:8001")]
        );
    }

    #[test]
    fn set_address_is_told_by_its_tag() {
        assert!(may_be_set_address(&set(
            u64::MAX,
            "127.0.0.1:65535",
            "127.0.0.1:8000"
        )));
        let put = machine_command_bytes::<KvStore>(&Command::Put {
            key: "k".to_string(),
            value: vec![ADDRESS_TAG],
        });
        assert!(!may_be_set_address(&put));
        assert!(!may_be_set_address(&[]));
    }

    #[test]
    fn machine_commands_carry_the_machines_output_and_garbage_changes_nothing() {
        let mut replica = Replica::new(KvStore::new());
        let put = machine_command_bytes::<KvStore>(&Command::Put {
            key: "k".to_string(),
            value: b"v".to_vec(),
        });
        assert_eq!(
            replica.apply_bytes(LogIndex(1), &put),
            NodeOutput::Machine(Output::Written { replaced: false })
        );
        let before = replica.clone();
        assert_eq!(
            replica.apply_bytes(LogIndex(2), &[MACHINE_TAG, 0xff]),
            NodeOutput::Machine(Output::Invalid)
        );
        for garbage in [&[][..], &[7][..], &[ADDRESS_TAG, 1][..]] {
            assert_eq!(
                replica.apply_bytes(LogIndex(2), garbage),
                NodeOutput::Invalid
            );
        }
        assert_eq!(replica, before);
    }

    #[test]
    fn snapshots_carry_the_addresses_and_the_machine() {
        let mut replica = Replica::new(KvStore::new());
        replica.apply_bytes(LogIndex(1), &set(4, "127.0.0.1:9003", "127.0.0.1:8003"));
        replica.apply_bytes(
            LogIndex(2),
            &machine_command_bytes::<KvStore>(&Command::Put {
                key: "k".to_string(),
                value: b"v".to_vec(),
            }),
        );
        let bytes = replica.snapshot_bytes();
        let mut restored = Replica::new(KvStore::new());
        restored.restore(&bytes).expect("a snapshot restores");
        assert_eq!(restored, replica);
        let mut longer = bytes.clone();
        longer.push(0);
        let mut kept = replica.clone();
        assert_eq!(kept.restore(&longer), Err(BadSnapshot));
        assert_eq!(kept, replica);
    }
}
