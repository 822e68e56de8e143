//! Authentication (client certificates, bearer tokens) and authorization
//! (RabbitMQ's configure / write / read rights per queue-name pattern, and an
//! admin right for cluster operations), from an auth file. Without one, every
//! client that reaches the node may do everything (TLS still decides who can
//! reach it). Every allowed admin action goes to the audit log ([`audit`]).

pub mod audit;
pub mod guard;
pub mod users;
