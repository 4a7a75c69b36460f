//! The cluster DNS server: hickory-server on UDP and TCP at one address,
//! answering from a [`ClusterDns`] that [`DnsServer::update`] swaps whole
//! while queries go on.
//!
//! Its sockets are made before anything is served, in the caller's
//! network namespace or, with [`DnsServer::start_in`], on a thread that
//! entered the node's: a socket stays in the namespace it was made in,
//! so the server then runs on an ordinary thread of its own.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_server::proto::rr::{
    Name, RData, Record as WireRecord, RecordType,
};
use hickory_server::server::{
    Request, RequestHandler, ResponseHandler, ResponseInfo,
};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::oneshot;

use super::records::{
    Answer, ClusterDns, QueryType, Rcode, Record, RecordData,
};
use super::DnsError;

/// How long a TCP client may stay silent before its connection is closed.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;
/// Tries at a TCP port free where the UDP one (picked by the kernel) is.
const PORT_TRIES: usize = 8;

/// The zone being served; replaced whole, so a query sees one version.
type Shared = Arc<RwLock<Arc<ClusterDns>>>;

/// A running DNS server. Dropping it stops it, as [`DnsServer::shutdown`]
/// does but without an answer.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Shared,
    questions: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl DnsServer {
    /// Serves an empty zone for `domain` on UDP and TCP at `addr`, in the
    /// caller's network namespace. Port 0 picks a free port (the same for
    /// both); [`DnsServer::addr`] tells which.
    pub fn start(
        addr: SocketAddr,
        domain: &str,
    ) -> Result<DnsServer, DnsError> {
        let (udp, tcp) = bind(addr)?;
        DnsServer::serve(udp, tcp, domain)
    }

    /// As [`DnsServer::start`], with the sockets made in the network
    /// namespace at `netns` (a node's bind-mounted namespace file). The
    /// address must be one of that namespace's (on `lo` or another link).
    pub fn start_in(
        netns: &Path,
        addr: SocketAddr,
        domain: &str,
    ) -> Result<DnsServer, DnsError> {
        let (udp, tcp) = lab03::network::run_in(netns, || bind(addr))
            .map_err(|source| DnsError::Netns {
                path: netns.to_path_buf(),
                source,
            })??;
        DnsServer::serve(udp, tcp, domain)
    }

    fn serve(
        udp: UdpSocket,
        tcp: TcpListener,
        domain: &str,
    ) -> Result<DnsServer, DnsError> {
        let addr = udp.local_addr().map_err(DnsError::Runtime)?;
        let zone: Shared =
            Arc::new(RwLock::new(Arc::new(ClusterDns::empty(domain))));
        let questions = Arc::new(AtomicU64::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DnsError::Runtime)?;
        // The sockets join this runtime's reactor, and the server's tasks
        // its queue; they run when the thread below drives it.
        let mut server = {
            let _entered = runtime.enter();
            let udp = tokio::net::UdpSocket::from_std(udp)
                .map_err(DnsError::Runtime)?;
            let tcp = tokio::net::TcpListener::from_std(tcp)
                .map_err(DnsError::Runtime)?;
            let mut server = Server::new(Handler {
                zone: zone.clone(),
                questions: questions.clone(),
            });
            server.register_socket(udp);
            server.register_listener(tcp, TCP_TIMEOUT, TCP_RESPONSE_BUFFER);
            server
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("dns {addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    // A closed channel (the server dropped) stops it too.
                    let _ = stopped.await;
                    server
                        .shutdown_gracefully()
                        .await
                        .map_err(|e| e.to_string())
                })
            })
            .map_err(DnsError::Runtime)?;
        Ok(DnsServer {
            addr,
            zone,
            questions,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the zone of these objects from now on. The SOA serial is
    /// the time of the update, in seconds, as the plugin's is.
    pub fn update(
        &self,
        services: &[Service],
        slices: &[EndpointSlice],
        pods: &[Pod],
    ) {
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        let domain = self.zone().domain().to_string();
        let zone = ClusterDns::build(&domain, services, slices, pods, serial);
        self.replace(zone);
    }

    /// Serves `zone` from now on.
    pub fn replace(&self, zone: ClusterDns) {
        let zone = Arc::new(zone);
        match self.zone.write() {
            Ok(mut current) => *current = zone,
            // A panic while the lock was held left no half-written zone:
            // the value is a whole Arc either way.
            Err(poisoned) => *poisoned.into_inner() = zone,
        }
    }

    /// How many questions it has answered (what a search path costs).
    pub fn questions(&self) -> u64 {
        self.questions.load(Ordering::Relaxed)
    }

    /// The zone being served.
    pub fn zone(&self) -> Arc<ClusterDns> {
        current(&self.zone)
    }

    /// Stops serving, closes the sockets and waits for the thread.
    pub fn shutdown(mut self) -> Result<(), DnsError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), DnsError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        match thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(DnsError::Stopped(why)),
            Err(_) => Err(DnsError::Stopped("its thread panicked".into())),
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn current(zone: &Shared) -> Arc<ClusterDns> {
    match zone.read() {
        Ok(z) => z.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// A UDP socket at `addr` and a TCP listener at the same address and
/// port, both non-blocking, as tokio takes them.
fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let bind_error = |protocol: &'static str| {
        move |source| DnsError::Bind {
            protocol,
            addr,
            source,
        }
    };
    let tries = if addr.port() == 0 { PORT_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(addr).map_err(bind_error("UDP"))?;
        let at = udp.local_addr().map_err(bind_error("UDP"))?;
        match TcpListener::bind(at) {
            Ok(tcp) => {
                udp.set_nonblocking(true).map_err(bind_error("UDP"))?;
                tcp.set_nonblocking(true).map_err(bind_error("TCP"))?;
                return Ok((udp, tcp));
            }
            // The kernel's free UDP port may be a used TCP one: another.
            Err(e) => last = Some(e),
        }
    }
    Err(bind_error("TCP")(last.unwrap_or_else(|| {
        std::io::Error::other("no port free for both UDP and TCP")
    })))
}

/// Answers every query from the zone of the moment.
struct Handler {
    zone: Shared,
    questions: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        self.questions.fetch_add(1, Ordering::Relaxed);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        // The answer's EDNS says what we take (the client's size, at least
        // 512), as an EDNS server must when the question had one.
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(512));
            edns.set_version(0);
            edns
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = edns.as_ref() {
            builder.edns(edns);
        }
        let query = request.request_info().ok().filter(|_| {
            request.metadata.message_type == MessageType::Query
                && request.metadata.op_code == OpCode::Query
        });
        let (code, authoritative, sections) = match query {
            Some(info) => {
                let qtype = match info.query.query_type() {
                    RecordType::A => QueryType::A,
                    RecordType::SRV => QueryType::Srv,
                    RecordType::SOA => QueryType::Soa,
                    other => QueryType::Other(other.into()),
                };
                let name = info.query.name().to_string();
                let answer = current(&self.zone).answer(&name, qtype);
                let (code, sections) = wire(&answer);
                (code, answer.rcode != Rcode::Refused, sections)
            }
            // Not one plain query: a malformed message, or an update, a
            // notify, a zone transfer, which this server does not do.
            None if request.request_info().is_err() => {
                (ResponseCode::FormErr, false, Default::default())
            }
            None => (ResponseCode::NotImp, false, Default::default()),
        };
        metadata.response_code = code;
        metadata.authoritative = authoritative;
        let [answers, soa, additionals] = &sections;
        let message = builder.build(
            metadata,
            answers.iter(),
            std::iter::empty(),
            soa.iter(),
            additionals.iter(),
        );
        let info = response.send_response(message).await;
        info.unwrap_or_else(|_| failed(metadata))
    }
}

/// What a response that could not be sent reports.
fn failed(mut metadata: Metadata) -> ResponseInfo {
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

/// The answer's code and sections (answers, authority, additionals) in
/// hickory's types. A record whose name does not parse is left out (ours
/// come from validated object names, so none should).
fn wire(answer: &Answer) -> (ResponseCode, [Vec<WireRecord>; 3]) {
    let code = match answer.rcode {
        Rcode::NoError => ResponseCode::NoError,
        Rcode::NxDomain => ResponseCode::NXDomain,
        Rcode::Refused => ResponseCode::Refused,
    };
    let convert = |records: &[Record]| -> Vec<WireRecord> {
        records.iter().filter_map(to_wire).collect()
    };
    (
        code,
        [
            convert(&answer.answers),
            convert(&answer.authority),
            convert(&answer.additionals),
        ],
    )
}

fn to_wire(record: &Record) -> Option<WireRecord> {
    let name = |text: &str| Name::from_ascii(text).ok();
    let data = match &record.data {
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Cname(target) => RData::CNAME(CNAME(name(target)?)),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, name(target)?)),
        RecordData::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum,
        } => RData::SOA(SOA::new(
            name(mname)?,
            name(rname)?,
            *serial,
            *refresh as i32,
            *retry as i32,
            *expire as i32,
            *minimum,
        )),
    };
    Some(WireRecord::from_rdata(
        name(&record.name)?,
        record.ttl,
        data,
    ))
}
