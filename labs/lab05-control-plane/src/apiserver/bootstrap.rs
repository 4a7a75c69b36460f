//! What a new cluster has before anyone asks: the namespaces every
//! cluster has, and the `kubernetes` Service in `default`, the API
//! server's own address for pods (the first ClusterIP of the range).
//! Made once; a server started again over the same store finds them.

use serde_json::{json, Value};

use super::handlers::create::store_new;
use super::resources::{self, Resource};
use super::server::ApiServer;
use super::status::ApiError;
use super::typed::{self, FieldValidation};

/// The namespaces kube-apiserver makes at start.
pub const NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

fn resource(plural: &str) -> Result<&'static Resource, ApiError> {
    resources::find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("no resource {plural}")))
}

/// Creates `object` unless its key holds something already.
async fn ensure(
    server: &ApiServer,
    resource: &'static Resource,
    namespace: Option<&str>,
    object: Value,
) -> Result<(), ApiError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let key = resource.key(namespace.unwrap_or_default(), name);
    if server.store().get(&key).await?.is_some() {
        return Ok(());
    }
    let decoded = typed::decode(resource, object, FieldValidation::Strict)?;
    match store_new(server, resource, namespace, decoded.object, false, &|_| {
        Ok(())
    })
    .await
    {
        // Another server started at the same time made it.
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        other => other.map(|_| ()),
    }
}

// ANCHOR: run
/// Makes what is missing of the cluster's first objects.
pub async fn run(server: &ApiServer) -> Result<(), ApiError> {
    let namespaces = resource("namespaces")?;
    for name in NAMESPACES {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": name}});
        ensure(server, namespaces, None, ns).await?;
    }
    let first = lab04::allocator::ClusterIpAllocator::new(
        server.options().service_cidr,
    )
    .first();
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "clusterIP": first.to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                       "targetPort": advertised_port(server)}],
        },
    });
    ensure(server, resource("services")?, Some("default"), service).await?;
    ensure(
        server,
        resource("endpoints")?,
        Some("default"),
        own_endpoints(&server.options().advertise_address),
    )
    .await
}

/// The port the API server advertises (the `kubernetes` Service's
/// target).
fn advertised_port(server: &ApiServer) -> u16 {
    let advertise = &server.options().advertise_address;
    advertise
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(6443)
}

/// The `kubernetes` Service's endpoints: the API server's own address,
/// so the Service leads to it (kube-apiserver keeps this object itself).
fn own_endpoints(advertise: &str) -> Value {
    let (ip, port) = advertise
        .rsplit_once(':')
        .and_then(|(ip, port)| Some((ip, port.parse::<u16>().ok()?)))
        .unwrap_or(("127.0.0.1", 6443));
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{
            "addresses": [{"ip": ip.trim_matches(['[', ']'])}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }],
    })
}
// ANCHOR_END: run
