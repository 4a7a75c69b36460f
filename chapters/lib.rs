//! What the chapter programs share. Chapter 3's node (its supervising
//! process, directory, control protocol and printers) is here rather than
//! in `ch03` alone, because chapter 4's program runs the same node, with
//! Services, a proxy and a DNS server beside its pods.

#[path = "ch03/backend.rs"]
pub mod backend;
#[path = "ch03/commands.rs"]
pub mod commands;
#[path = "ch03/daemon.rs"]
pub mod daemon;
#[path = "ch03/images.rs"]
pub mod images;
#[path = "ch03/layout.rs"]
pub mod layout;
#[path = "ch03/linux_node.rs"]
pub mod linux_node;
#[path = "ch03/node.rs"]
pub mod node;
#[path = "ch03/printers.rs"]
pub mod printers;
#[path = "ch03/protocol.rs"]
pub mod protocol;
#[path = "ch04/proxies.rs"]
pub mod proxies;
#[path = "ch03/running.rs"]
pub mod running;
#[path = "ch04/service_node.rs"]
pub mod service_node;
#[path = "ch04/printers.rs"]
pub mod service_printers;
#[path = "ch04/services.rs"]
pub mod services;
#[path = "ch03/tabwriter.rs"]
pub mod tabwriter;
