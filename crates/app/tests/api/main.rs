//! The application layer's tests, through its use cases and the in-memory ports: ONE test
//! binary (one link, not seventeen, on two cores), a module per subject, the shared worlds in
//! `support` (the inventory's) and `holds_support` (the checkout's).

mod holds_support;
mod support;

mod after_sale;
mod awaiting;
mod backfill;
mod boundary;
mod broadcast;
mod caps;
mod catalog_sync;
mod controls;
mod entrypoints_in_docs;
mod event_types_in_docs;
mod handler;
mod holds;
mod inbound;
mod lifecycle;
mod link_guard;
mod link_terms;
mod links;
mod operations;
mod parking;
mod recovery;
mod shards;
mod takes;
mod waitlist;
