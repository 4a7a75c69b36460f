//! Request bodies: JSON, YAML or protobuf into one JSON tree, within the
//! server's size limit, with kube-apiserver's errors for the rest.

use axum::http::HeaderMap;
use serde_json::Value;

use super::protobuf;
use super::status::ApiError;

/// The media type of a request (`application/json`), without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The object in a request body of media type `media`.
pub fn decode(media: &str, body: &[u8]) -> Result<Value, ApiError> {
    match media {
        // No Content-Type at all: kube-apiserver takes it as JSON.
        "application/json" | "" => json(body),
        "application/yaml" | "application/x-yaml" | "text/yaml" => yaml(body),
        "application/vnd.kubernetes.protobuf" => protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(e.to_string())),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {e}"
        ))
    })
}

fn yaml(body: &[u8]) -> Result<Value, ApiError> {
    let yaml: serde_yaml::Value =
        serde_yaml::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error converting YAML to JSON: yaml: {e}"
            ))
        })?;
    serde_json::to_value(yaml).map_err(|e| {
        ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_line_and_column() {
        let e = decode("application/json", b"{\n  \"a\": ,\n}").unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("line 2 column"), "{}", e.message);
    }

    #[test]
    fn yaml_is_read() {
        let v =
            decode("application/yaml", b"kind: Pod\nspec:\n  a: 1\n").unwrap();
        assert_eq!(v["spec"]["a"], 1);
        let e = decode("application/yaml", b"a: [1\n").unwrap_err();
        assert!(e.message.contains("line"), "{}", e.message);
    }

    #[test]
    fn other_media_types_are_refused() {
        let e = decode("text/plain", b"x").unwrap_err();
        assert_eq!((e.code, e.reason), (415, "UnsupportedMediaType"));
    }
}
