//! Random protobuf messages of any type a descriptor pool describes, with the
//! values that break servers: empty, huge and non-ASCII strings, extreme
//! numbers, unknown enum values, byte fields that look like a bincode
//! length prefix (the peer RPCs carry bincode in bytes fields), repeated
//! fields from empty to many, nested messages to a bounded depth.

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// Messages nest no deeper than this (recursive types stop here).
const MAX_DEPTH: usize = 4;
/// Bytes of strings and byte fields one message may hold in all, so a call
/// stays cheap; a few single values go past it on purpose.
const BUDGET: usize = 256 << 10;

pub struct Generator {
    pub rng: StdRng,
    /// Names that exist on the cluster (queues), picked now and then so that
    /// requests also reach real state.
    pub names: Vec<String>,
    /// Numbers that mean something on the cluster (node and group ids).
    pub ids: Vec<u64>,
    budget: usize,
}

impl Generator {
    pub fn new(rng: StdRng, names: Vec<String>, ids: Vec<u64>) -> Generator {
        Generator {
            rng,
            names,
            ids,
            budget: BUDGET,
        }
    }

    /// A random well-formed message of type `desc`.
    pub fn message(&mut self, desc: &MessageDescriptor) -> DynamicMessage {
        self.budget = BUDGET;
        self.fill(desc, 0)
    }

    /// Encoded well-formed message, or (sometimes) one with a few bytes
    /// flipped, cut or appended, which may or may not still parse.
    pub fn body(&mut self, desc: &MessageDescriptor, well_formed: bool) -> Bytes {
        let mut bytes = self.message(desc).encode_to_vec();
        if !well_formed {
            self.mutate(&mut bytes);
        }
        Bytes::from(bytes)
    }

    /// Bytes that are most likely no protobuf message at all.
    pub fn garbage(&mut self) -> Bytes {
        let len = match self.rng.gen_range(0..10) {
            0 => 0,
            1..=6 => self.rng.gen_range(1..32),
            7..=8 => self.rng.gen_range(32..512),
            _ => self.rng.gen_range(512..70_000),
        };
        Bytes::from(self.raw_bytes(len))
    }

    fn mutate(&mut self, bytes: &mut Vec<u8>) {
        for _ in 0..self.rng.gen_range(1..4) {
            match self.rng.gen_range(0..4) {
                0 if !bytes.is_empty() => {
                    let i = self.rng.gen_range(0..bytes.len());
                    bytes[i] ^= 1 << self.rng.gen_range(0..8);
                }
                1 if !bytes.is_empty() => {
                    let at = self.rng.gen_range(0..bytes.len());
                    bytes.truncate(at);
                }
                2 => {
                    let n = self.rng.gen_range(1..12);
                    let extra = self.raw_bytes(n);
                    bytes.extend(extra);
                }
                _ => {
                    let at = self.rng.gen_range(0..=bytes.len());
                    let byte = self.rng.gen();
                    bytes.insert(at, byte);
                }
            }
        }
    }

    fn fill(&mut self, desc: &MessageDescriptor, depth: usize) -> DynamicMessage {
        let mut msg = DynamicMessage::new(desc.clone());
        for field in desc.fields() {
            // Real oneofs get one member below; proto3 `optional` is a
            // synthetic oneof of one field, set like any other.
            if field.containing_oneof().is_some_and(|o| !o.is_synthetic()) {
                continue;
            }
            if self.rng.gen_bool(0.75) {
                if let Some(v) = self.field_value(&field, depth) {
                    msg.set_field(&field, v);
                }
            }
        }
        for oneof in desc.oneofs().filter(|o| !o.is_synthetic()) {
            let members: Vec<FieldDescriptor> = oneof.fields().collect();
            if self.rng.gen_bool(0.9) {
                if let Some(field) = members.choose(&mut self.rng).cloned() {
                    if let Some(v) = self.field_value(&field, depth) {
                        msg.set_field(&field, v);
                    }
                }
            }
        }
        msg
    }

    fn field_value(&mut self, field: &FieldDescriptor, depth: usize) -> Option<Value> {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return None;
            };
            let key_kind = entry.map_entry_key_field().kind();
            let value_field = entry.map_entry_value_field();
            let mut map = std::collections::HashMap::new();
            for _ in 0..self.count() {
                let key = self.map_key(&key_kind)?;
                let value = self.single(&value_field.kind(), depth)?;
                map.insert(key, value);
            }
            return Some(Value::Map(map));
        }
        if field.is_list() {
            let mut items = Vec::new();
            for _ in 0..self.count() {
                items.push(self.single(&field.kind(), depth)?);
            }
            return Some(Value::List(items));
        }
        self.single(&field.kind(), depth)
    }

    /// Items of a repeated field: mostly few, sometimes many.
    fn count(&mut self) -> usize {
        match self.rng.gen_range(0..20) {
            0..=4 => 0,
            5..=16 => self.rng.gen_range(1..4),
            17..=18 => self.rng.gen_range(4..20),
            _ => self.rng.gen_range(20..200),
        }
    }

    fn single(&mut self, kind: &Kind, depth: usize) -> Option<Value> {
        Some(match kind {
            Kind::Bool => Value::Bool(self.rng.gen()),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(self.i64() as i32),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(self.i64()),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(self.u64() as u32),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(self.u64()),
            Kind::Float => Value::F32(self.f64() as f32),
            Kind::Double => Value::F64(self.f64()),
            Kind::String => Value::String(self.string()),
            Kind::Bytes => {
                let len = self.bytes_len();
                Value::Bytes(Bytes::from(self.raw_bytes(len)))
            }
            Kind::Enum(e) => {
                let known: Vec<i32> = e.values().map(|v| v.number()).collect();
                match known.choose(&mut self.rng) {
                    Some(n) if self.rng.gen_bool(0.85) => Value::EnumNumber(*n),
                    // proto3 enums are open: a value the server does not know.
                    _ => Value::EnumNumber(self.i64() as i32),
                }
            }
            Kind::Message(m) => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                Value::Message(self.fill(m, depth + 1))
            }
        })
    }

    fn map_key(&mut self, kind: &Kind) -> Option<MapKey> {
        Some(match kind {
            Kind::Bool => MapKey::Bool(self.rng.gen()),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(self.i64() as i32),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(self.i64()),
            Kind::Uint32 | Kind::Fixed32 => MapKey::U32(self.u64() as u32),
            Kind::Uint64 | Kind::Fixed64 => MapKey::U64(self.u64()),
            Kind::String => MapKey::String(self.string()),
            _ => return None,
        })
    }

    pub fn u64(&mut self) -> u64 {
        match self.rng.gen_range(0..12) {
            0 => 0,
            1 => 1,
            2..=3 => self.rng.gen_range(2..100),
            4 => u64::MAX,
            5 => u64::MAX - self.rng.gen_range(0..3),
            6 => 1 << self.rng.gen_range(0..64),
            7 => u32::MAX as u64 + self.rng.gen_range(0..2),
            8..=9 if !self.ids.is_empty() => *self.ids.choose(&mut self.rng).unwrap_or(&0),
            _ => self.rng.gen(),
        }
    }

    fn i64(&mut self) -> i64 {
        match self.rng.gen_range(0..8) {
            0 => 0,
            1 => -1,
            2 => i64::MIN,
            3 => i64::MAX,
            4 => i32::MIN as i64,
            5 => self.rng.gen_range(-100..100),
            _ => self.rng.gen(),
        }
    }

    fn f64(&mut self) -> f64 {
        match self.rng.gen_range(0..6) {
            0 => 0.0,
            1 => f64::NAN,
            2 => f64::INFINITY,
            3 => -1.0,
            _ => self.rng.gen::<f64>() * 1e6,
        }
    }

    pub fn string(&mut self) -> String {
        const ODD: &[&str] = &[
            "ünïcødé",
            "名前",
            "🦀",
            "\u{0}",
            "\u{202e}rtl",
            "../../etc/passwd",
            " ",
            "a b",
            "x-death-reason",
            "raftq-retry",
            "%s%n",
            "\r\n",
        ];
        let s = match self.rng.gen_range(0..20) {
            0..=2 if !self.names.is_empty() => self
                .names
                .choose(&mut self.rng)
                .cloned()
                .unwrap_or_default(),
            3..=4 => String::new(),
            5..=11 => {
                let len = self.rng.gen_range(1..24);
                (0..len)
                    .map(|_| {
                        *b"abcdefghijklmnopqrstuvwxyz0123456789-_."
                            .choose(&mut self.rng)
                            .unwrap_or(&b'a') as char
                    })
                    .collect()
            }
            12..=14 => {
                let parts = self.rng.gen_range(1..4);
                (0..parts)
                    .map(|_| *ODD.choose(&mut self.rng).unwrap_or(&""))
                    .collect()
            }
            15 => "q".repeat(self.rng.gen_range(250..260)),
            16 => "z".repeat(self.rng.gen_range(1_000..70_000).min(self.budget)),
            _ => {
                let len = self.rng.gen_range(1..64);
                (0..len)
                    .map(|_| char::from_u32(self.rng.gen_range(1..0x11_0000)).unwrap_or('?'))
                    .collect()
            }
        };
        self.budget = self.budget.saturating_sub(s.len());
        s
    }

    fn bytes_len(&mut self) -> usize {
        match self.rng.gen_range(0..20) {
            // Over a queue's default max_message_bytes (1 MiB), at most once
            // per message: it takes the whole budget.
            19 if self.budget == BUDGET => {
                self.budget = 0;
                (1 << 20) + self.rng.gen_range(0..2)
            }
            0..=3 => 0,
            r => {
                let len = match r {
                    4..=13 => self.rng.gen_range(1..24),
                    14..=17 => self.rng.gen_range(24..512),
                    _ => self.rng.gen_range(512..70_000),
                };
                let len = len.min(self.budget);
                self.budget -= len;
                len
            }
        }
    }

    /// Random bytes, often drawn from the values that start bincode's
    /// variable-length integers (251-255: a u16/u32/u64/u128 follows), so
    /// lengths claimed inside a payload are often huge.
    pub fn raw_bytes(&mut self, len: usize) -> Vec<u8> {
        const BINCODE_ISH: &[u8] = &[0, 1, 2, 3, 0x7f, 250, 251, 252, 253, 254, 255];
        let biased = self.rng.gen_bool(0.5);
        (0..len)
            .map(|_| {
                if biased && self.rng.gen_bool(0.6) {
                    *BINCODE_ISH.choose(&mut self.rng).unwrap_or(&0)
                } else {
                    self.rng.gen()
                }
            })
            .collect()
    }
}
