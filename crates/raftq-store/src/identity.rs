//! Who a data dir belongs to. Raft's votes are only as good as the disk that
//! holds them: a node whose data dir was lost has forgotten whom it voted for
//! and which entries it acknowledged, so it must come back under a new id. The
//! cluster tells a wiped node from its former self by the incarnation, drawn
//! at random when a data dir is created.

use serde::{Deserialize, Serialize};

use crate::checksum;
use crate::node_store::NodeStore;
use crate::StoreError;

const KEY: &[u8] = b"identity";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: u64,
    pub incarnation: u64,
    /// The cluster this data dir belongs to, once it has learned it.
    pub cluster_id: Option<String>,
}

impl NodeStore {
    pub fn identity(&self) -> Result<Option<Identity>, StoreError> {
        match self.node_meta()?.get(KEY)? {
            Some(bytes) => Ok(Some(checksum::decode_sealed(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Records `identity` durably (fsync) before returning.
    pub fn record_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        let tree = self.node_meta()?;
        tree.insert(KEY, checksum::encode_sealed(identity)?)?;
        self.flush_durably()?;
        Ok(())
    }

    /// Whether anything at all was ever stored here: a data dir without an
    /// identity but with groups predates identities and is adopted as it is.
    pub fn is_blank(&self) -> bool {
        self.groups_on_disk().is_empty()
    }
}
