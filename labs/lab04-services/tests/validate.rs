//! The book's Service manifests parse and validate; broken ones are refused
//! with kube-apiserver's field paths.

use lab04::manifest::parse_service;
use lab04::validate::validate_service;

#[test]
fn the_books_services_are_valid() {
    let dir = format!("{}/tests/services", env!("CARGO_MANIFEST_DIR"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let svc =
            parse_service(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errors = validate_service(&svc);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(names.len(), 6);
}

#[test]
fn broken_services_are_refused_with_field_paths() {
    let text = r#"
apiVersion: v1
kind: Service
metadata:
  name: 1kubia
spec:
  type: LoadBalancer
  clusterIP: 198.19.0.500
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}
  selector: {app: "bad value!"}
  ports:
  - {name: http, port: 80, targetPort: 0}
  - {name: http, port: 80, protocol: HTTP}
  - {port: 70000, targetPort: Not_A-Name, nodePort: 30001}
"#;
    let errors: Vec<String> = validate_service(&parse_service(text).unwrap())
        .iter()
        .map(|e| e.to_string())
        .collect();
    insta::assert_yaml_snapshot!(errors);
}

#[test]
fn an_unknown_field_is_refused() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: kubia}\nspec:\n  ports: [{port: 80, targetPrt: 8080}]\n";
    let err = parse_service(text).unwrap_err().to_string();
    assert_eq!(
        err,
        "document 1: strict decoding error: unknown field \"spec.ports[0].targetPrt\""
    );
    let err = lab04::manifest::parse_service(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "document 1: kind \"Pod\" is not \"Service\""
    );
}
