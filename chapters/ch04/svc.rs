//! The kubectl-like commands for Services. `apply` and `expose` do what
//! kube-apiserver does on a create (validation, defaults, a ClusterIP)
//! and write the Service into the node's `services/` directory; `get`,
//! `describe` and `delete` ask the running node, which is where the
//! EndpointSlices and the proxy's rules are. Pods go to chapter 3's code.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use chapters::commands as pods;
use chapters::layout::NodeDir;
use chapters::protocol::{Client, Request, Response};
use chapters::service_node::ServiceView;
use chapters::service_printers as printers;
use chapters::services::ServiceStore;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use lab02::home::Home;

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The manifest (YAML or JSON, Services and Pods); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
}

#[derive(clap::Args)]
pub struct ExposeArgs {
    /// `pod` (the Service selects that pod's labels) or `label` (a selector
    /// such as `app=kubia`).
    kind: String,
    /// The pod's name, or the selector.
    target: String,
    /// The Service's port.
    #[arg(long)]
    port: i32,
    /// The pods' port, a number or a name (default: the same as --port).
    #[arg(long, value_name = "PORT")]
    target_port: Option<String>,
    /// The Service's name (default: the pod's; required for `label`).
    #[arg(long)]
    name: Option<String>,
    /// `ClusterIP` or `NodePort`.
    #[arg(long = "type", default_value = "ClusterIP")]
    type_: String,
    /// `None` or `ClientIP`.
    #[arg(long)]
    session_affinity: Option<String>,
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// `services` (`svc`), `endpointslices`, or `pods` (`po`).
    resource: String,
    /// Only these.
    names: Vec<String>,
    /// `wide`, `yaml` or `json`.
    #[arg(short = 'o', long = "output", value_name = "FORMAT")]
    output: Option<String>,
}

#[derive(clap::Args)]
pub struct DescribeArgs {
    /// `service` (`svc`) or `pod`.
    resource: String,
    name: String,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// `service` (`svc`) or `pod`.
    resource: String,
    name: String,
}

enum Kind {
    Services,
    Slices,
    Pods,
}

fn kind(resource: &str) -> Result<Kind> {
    Ok(match resource {
        "service" | "services" | "svc" => Kind::Services,
        "endpointslice" | "endpointslices" => Kind::Slices,
        "pod" | "pods" | "po" => Kind::Pods,
        other => bail!(
            "the server doesn't have a resource type {other:?} \
             (this node knows services, endpointslices and pods)"
        ),
    })
}

/// Every Service of the running node, with its slices and events.
pub fn views(dir: &NodeDir) -> Result<Vec<ServiceView>> {
    let mut client =
        Client::connect(&dir.socket())?.timeout(Duration::from_secs(30))?;
    match client.call(&Request::Services)? {
        Response::Services(v) => Ok(v),
        other => bail!("the node answered {other:?}"),
    }
}

fn read_input(file: &Path) -> Result<(String, String)> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok((text, "<stdin>".into()));
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("read {}", file.display()))?;
    Ok((text, file.display().to_string()))
}

// ANCHOR: apply
/// Splits a manifest by kind, checks every object strictly, and only
/// then writes any: Services to the node's Services, Pods to its manifests.
pub fn apply(home: &Home, node: &str, args: ApplyArgs) -> Result<u8> {
    let (text, source) = read_input(&args.file)?;
    let mut services = Vec::new();
    let mut pod_list = Vec::new();
    let docs =
        lab03::manifest::documents(&text).with_context(|| source.clone())?;
    for (i, doc) in docs.into_iter().enumerate().filter(|(_, d)| !d.is_null()) {
        match doc.get("kind").and_then(|k| k.as_str()) {
            Some("Service") => services.push(
                lab03::manifest::object_from_tree::<Service>(i + 1, doc)
                    .with_context(|| source.clone())?,
            ),
            Some("Pod") => pod_list.push(
                lab03::manifest::object_from_tree::<Pod>(i + 1, doc)
                    .with_context(|| source.clone())?,
            ),
            Some(other) => bail!(
                "{source}: document {}: kind {other:?} is not one this node keeps (Service, Pod)",
                i + 1
            ),
            None => bail!("{source}: document {}: Object 'Kind' is missing", i + 1),
        }
    }
    pods::validate_pods(&pod_list, &source)?;
    if services.is_empty() && pod_list.is_empty() {
        bail!("{source}: no objects passed to apply");
    }
    let dir = pods::running_node(home, node)?;
    if !services.is_empty() {
        for (name, outcome) in
            ServiceStore::of(&dir.root).apply(&services, &source)?
        {
            println!("service/{name} {outcome}");
        }
    }
    if !pod_list.is_empty() {
        let body = if pod_list.len() == 1 && services.is_empty() {
            text.clone()
        } else {
            String::new()
        };
        pods::apply_pods(&dir, &pod_list, &body)?;
    }
    Ok(0)
}
// ANCHOR_END: apply

/// `expose pod NAME` or `expose label SELECTOR`: a Service whose selector
/// is the pod's labels (as `kubectl expose pod`) or the given equalities.
pub fn expose(home: &Home, node: &str, args: ExposeArgs) -> Result<u8> {
    let dir = pods::running_node(home, node)?;
    let (name, selector) = match args.kind.as_str() {
        "pod" | "pods" | "po" => {
            let pod = pods::find(&dir, &args.target)?.pod;
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            if labels.is_empty() {
                bail!(
                    "couldn't retrieve selectors via --selector flag or introspection: \
                     the pod {:?} has no labels",
                    args.target
                );
            }
            (
                args.name.clone().unwrap_or_else(|| args.target.clone()),
                labels,
            )
        }
        "label" | "selector" => {
            let name = args
                .name
                .clone()
                .context("expose label needs --name: a selector does not name the Service")?;
            (name, equality_selector(&args.target)?)
        }
        other => bail!(
            "cannot expose a {other:?}: expose `pod NAME` or `label SELECTOR`"
        ),
    };
    let target_port =
        args.target_port.as_deref().map(|t| match t.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(t.to_string()),
        });
    let svc = Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                port: args.port,
                target_port: target_port.or(Some(IntOrString::Int(args.port))),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            type_: Some(args.type_.clone()),
            session_affinity: args.session_affinity.clone(),
            ..Default::default()
        }),
        status: None,
    };
    let store = ServiceStore::of(&dir.root);
    if store.get("default", &name)?.is_some() {
        bail!("services {name:?} already exists");
    }
    store.apply(&[svc], "expose")?;
    println!("service/{name} exposed");
    Ok(0)
}

/// A Service's selector is a map: only `key=value` pairs (`==` too) make one.
fn equality_selector(text: &str) -> Result<BTreeMap<String, String>> {
    let parsed = lab04::selector::Selector::parse(text)
        .map_err(|e| anyhow::anyhow!("selector {text:?}: {e}"))?;
    let mut map = BTreeMap::new();
    for r in parsed.requirements() {
        let one = r.values.iter().next().filter(|_| r.values.len() == 1);
        match (r.operator, one) {
            (lab04::selector::Operator::Equals, Some(v)) => {
                map.insert(r.key.clone(), v.clone());
            }
            _ => bail!(
                "selector {text:?}: a Service selects by equality only \
                 (key=value, comma-separated); {:?} is not one",
                r.key
            ),
        }
    }
    if map.is_empty() {
        bail!("selector {text:?}: empty (a Service with no selector selects nothing)");
    }
    Ok(map)
}

pub fn get(home: &Home, node: &str, args: GetArgs) -> Result<u8> {
    let which = kind(&args.resource)?;
    if let Kind::Pods = which {
        return pods::get(
            home,
            node,
            pods::GetArgs {
                resource: "pods".into(),
                names: args.names,
                output: args.output,
            },
        );
    }
    let dir = pods::running_node(home, node)?;
    // The kept Services are the truth (the API server's store); slices are
    // what the node computed from them.
    let mut services = ServiceStore::of(&dir.root).list()?;
    let mut slices: Vec<_> =
        views(&dir)?.into_iter().flat_map(|v| v.slices).collect();
    if !args.names.is_empty() {
        let wanted =
            |name: Option<&String>| args.names.iter().any(|n| Some(n) == name);
        services.retain(|s| wanted(s.metadata.name.as_ref()));
        slices.retain(|s| {
            let label = s.metadata.labels.as_ref();
            wanted(
                label.and_then(|l| l.get(lab04::endpoints::SERVICE_NAME_LABEL)),
            ) || wanted(s.metadata.name.as_ref())
        });
        if let Kind::Services = which {
            for n in &args.names {
                if !services.iter().any(|s| s.metadata.name.as_ref() == Some(n))
                {
                    bail!("services {n:?} not found");
                }
            }
        }
    }
    let now = SystemTime::now();
    match (which, args.output.as_deref()) {
        (Kind::Services, None) => {
            print!("{}", printers::get_services(&services, false, now))
        }
        (Kind::Services, Some("wide")) => {
            print!("{}", printers::get_services(&services, true, now))
        }
        (Kind::Slices, None | Some("wide")) => {
            print!("{}", printers::get_endpoint_slices(&slices, now))
        }
        (Kind::Services, Some(f)) => print_objects(&services, "Service", f)?,
        (Kind::Slices, Some(f)) => print_objects(&slices, "EndpointSlice", f)?,
        (Kind::Pods, _) => unreachable!("pods went to chapter 3's get"),
    }
    Ok(0)
}

/// `-o yaml|json`: one object as itself, several as a `List`.
fn print_objects<T: serde::Serialize>(
    items: &[T],
    kind: &str,
    format: &str,
) -> Result<()> {
    let mut values = Vec::new();
    for item in items {
        let mut v = serde_json::to_value(item)?;
        if let Some(map) = v.as_object_mut() {
            let api = if kind == "EndpointSlice" {
                "discovery.k8s.io/v1"
            } else {
                "v1"
            };
            map.insert("apiVersion".into(), api.into());
            map.insert("kind".into(), kind.into());
        }
        values.push(v);
    }
    let out = if values.len() == 1 {
        values.remove(0)
    } else {
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values, "metadata": {"resourceVersion": ""}})
    };
    match format {
        "yaml" => print!("{}", serde_yaml::to_string(&out)?),
        "json" => println!("{}", serde_json::to_string_pretty(&out)?),
        other => bail!("unable to match a printer suitable for the output format {other:?}, allowed formats are: json,wide,yaml"),
    }
    Ok(())
}

pub fn describe(home: &Home, node: &str, args: DescribeArgs) -> Result<u8> {
    match kind(&args.resource)? {
        Kind::Pods => pods::describe(
            home,
            node,
            pods::DescribeArgs {
                resource: "pod".into(),
                name: args.name,
            },
        ),
        Kind::Slices => bail!("describe knows services and pods"),
        Kind::Services => {
            let dir = pods::running_node(home, node)?;
            let service = ServiceStore::of(&dir.root)
                .get("default", &args.name)?
                .with_context(|| {
                    format!("services {:?} not found", args.name)
                })?;
            let view = views(&dir)?
                .into_iter()
                .find(|v| {
                    v.service.metadata.name.as_deref()
                        == Some(args.name.as_str())
                })
                .unwrap_or(ServiceView {
                    service: service.clone(),
                    slices: Vec::new(),
                    events: Vec::new(),
                });
            let view = ServiceView { service, ..view };
            print!(
                "{}",
                printers::describe_service(
                    &view.service,
                    &view.slices,
                    &view.events,
                    SystemTime::now()
                )
            );
            Ok(0)
        }
    }
}

/// Removes the Service, then waits until the node has dropped it: its
/// rules, addresses and DNS records are gone when this returns.
pub fn delete(home: &Home, node: &str, args: DeleteArgs) -> Result<u8> {
    match kind(&args.resource)? {
        Kind::Pods => pods::delete(
            home,
            node,
            pods::DeleteArgs {
                resource: "pod".into(),
                name: args.name,
            },
        ),
        Kind::Slices => {
            bail!("EndpointSlices follow their Service: delete the Service")
        }
        Kind::Services => {
            let dir = pods::running_node(home, node)?;
            if !ServiceStore::of(&dir.root).delete("default", &args.name)? {
                bail!("services {:?} not found", args.name);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while views(&dir)?.iter().any(|v| {
                v.service.metadata.name.as_deref() == Some(args.name.as_str())
            }) {
                if Instant::now() > deadline {
                    bail!(
                        "the node still has service {:?} after 10s",
                        args.name
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("service {:?} deleted", args.name);
            Ok(0)
        }
    }
}
