//! A pod's phase and conditions from its containers' statuses: the
//! kubelet's truth table.

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PodSpec,
};
use lab03::phase::{conditions, pod_phase, terminated_reason, Phase, RestartPolicy};

/// A container's state, short.
#[derive(Clone, Copy, Debug)]
enum S {
    /// No status at all.
    Missing,
    /// A status with no state set.
    Blank,
    Running,
    /// Running and started (startup probe passed), for sidecars.
    Started,
    Exited(i32),
    /// Waiting for its first start.
    Waiting,
    /// Waiting to restart after an exit with this code.
    Restarting(i32),
}

fn terminated(code: i32) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn status(name: &str, s: S) -> Option<ContainerStatus> {
    let mut st = ContainerStatus {
        name: name.into(),
        ..Default::default()
    };
    match s {
        S::Missing => return None,
        S::Blank => st.state = Some(ContainerState::default()),
        S::Running | S::Started => {
            st.state = Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            });
            st.started = Some(matches!(s, S::Started));
            st.ready = true;
        }
        S::Exited(code) => {
            st.state = Some(terminated(code));
            // A completed init container reports ready.
            st.ready = code == 0;
        }
        S::Waiting => {
            st.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".into()),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
        S::Restarting(code) => {
            st.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    ..Default::default()
                }),
                ..Default::default()
            });
            st.last_state = Some(terminated(code));
        }
    }
    Some(st)
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        ..Default::default()
    }
}

fn sidecar(name: &str) -> Container {
    Container {
        restart_policy: Some("Always".into()),
        ..container(name)
    }
}

/// A pod with init containers `inits` and app containers `apps`, each with
/// its state, under `policy`.
fn pod(policy: &str, inits: &[(Container, S)], apps: &[S]) -> (PodSpec, Vec<ContainerStatus>) {
    let mut statuses = Vec::new();
    let mut spec = PodSpec {
        restart_policy: Some(policy.into()),
        ..Default::default()
    };
    if !inits.is_empty() {
        let mut cs = Vec::new();
        for (c, s) in inits {
            let mut st = status(&c.name, *s);
            // An init container is ready once it has completed (a sidecar
            // as it runs).
            if c.restart_policy.is_none() {
                if let Some(st) = &mut st {
                    st.ready = matches!(s, S::Exited(0));
                }
            }
            statuses.extend(st);
            cs.push(c.clone());
        }
        spec.init_containers = Some(cs);
    }
    for (i, s) in apps.iter().enumerate() {
        let name = ["web", "log", "c2", "c3"][i].to_string();
        statuses.extend(status(&name, *s));
        spec.containers.push(container(&name));
    }
    (spec, statuses)
}

fn phase(policy: &str, apps: &[S]) -> Phase {
    let (spec, statuses) = pod(policy, &[], apps);
    pod_phase(&spec, &statuses, false)
}

use S::*;

/// Init containers with their states.
type Inits<'a> = &'a [(Container, S)];

#[test]
fn phase_of_app_containers() {
    // (policy, the app containers' states, the phase)
    let table: &[(&str, &[S], Phase)] = &[
        ("Always", &[Waiting], Phase::Pending),
        ("Always", &[Running, Waiting], Phase::Pending),
        ("Always", &[Missing], Phase::Pending),
        ("Always", &[Blank], Phase::Pending),
        ("Always", &[Running], Phase::Running),
        ("Always", &[Running, Running], Phase::Running),
        ("Always", &[Running, Exited(0)], Phase::Running),
        ("Always", &[Running, Missing], Phase::Pending),
        ("Always", &[Running, Restarting(1)], Phase::Running),
        // All stopped: the policy decides.
        ("Always", &[Exited(0)], Phase::Running),
        ("Always", &[Exited(1)], Phase::Running),
        ("Always", &[Restarting(2)], Phase::Running),
        ("OnFailure", &[Exited(0)], Phase::Succeeded),
        ("OnFailure", &[Exited(0), Exited(0)], Phase::Succeeded),
        ("OnFailure", &[Exited(1)], Phase::Running),
        ("OnFailure", &[Exited(0), Restarting(1)], Phase::Running),
        ("Never", &[Exited(0)], Phase::Succeeded),
        ("Never", &[Exited(0), Exited(3)], Phase::Failed),
        ("Never", &[Exited(137)], Phase::Failed),
        // A container waiting to restart counts as stopped, not succeeded.
        ("Never", &[Restarting(0)], Phase::Failed),
        ("Never", &[Exited(0), Missing], Phase::Pending),
        ("Never", &[Running, Exited(1)], Phase::Running),
        // No policy given: Always.
        ("", &[Exited(0)], Phase::Running),
    ];
    for (policy, apps, want) in table {
        assert_eq!(phase(policy, apps), *want, "{policy} {apps:?}");
    }
}

#[test]
fn a_terminal_pod_ignores_its_policy() {
    for (apps, want) in [
        (&[Exited(0), Exited(0)][..], Phase::Succeeded),
        (&[Exited(0), Exited(1)][..], Phase::Failed),
        (&[Restarting(1)][..], Phase::Failed),
    ] {
        let (spec, statuses) = pod("Always", &[], apps);
        assert_eq!(pod_phase(&spec, &statuses, true), want, "{apps:?}");
        // Not terminal, Always restarts them: Running.
        assert_eq!(pod_phase(&spec, &statuses, false), Phase::Running);
    }
    // Running containers still make it Running.
    let (spec, statuses) = pod("Never", &[], &[Running]);
    assert_eq!(pod_phase(&spec, &statuses, true), Phase::Running);
}

#[test]
fn phase_with_init_containers() {
    let init = |s| (container("init"), s);
    let table: &[(&str, Inits, &[S], Phase)] = &[
        // An init container still to run or running: Pending.
        ("Always", &[init(Missing)], &[Missing], Phase::Pending),
        ("Always", &[init(Waiting)], &[Waiting], Phase::Pending),
        ("Always", &[init(Running)], &[Waiting], Phase::Pending),
        // One that failed: Failed under Never, else it is retried.
        ("Never", &[init(Exited(1))], &[Waiting], Phase::Failed),
        ("Never", &[init(Restarting(1))], &[Waiting], Phase::Failed),
        ("Always", &[init(Exited(1))], &[Waiting], Phase::Pending),
        (
            "OnFailure",
            &[init(Restarting(1))],
            &[Waiting],
            Phase::Pending,
        ),
        // Done: the app containers decide.
        ("Always", &[init(Exited(0))], &[Running], Phase::Running),
        ("Never", &[init(Exited(0))], &[Exited(0)], Phase::Succeeded),
        // The second runs only after the first.
        (
            "Always",
            &[(container("a"), Exited(0)), (container("b"), Running)],
            &[Waiting],
            Phase::Pending,
        ),
    ];
    for (policy, inits, apps, want) in table {
        let (spec, statuses) = pod(policy, inits, apps);
        assert_eq!(
            pod_phase(&spec, &statuses, false),
            *want,
            "{policy} {inits:?} {apps:?}"
        );
    }
}

#[test]
fn phase_with_sidecars() {
    let side = |s| (sidecar("proxy"), s);
    let table: &[(Inits, &[S], Phase)] = &[
        // A sidecar not yet started holds the pod in Pending.
        (&[side(Running)], &[Waiting], Phase::Pending),
        (&[side(Missing)], &[Waiting], Phase::Pending),
        (&[side(Started)], &[Running], Phase::Running),
        // A sidecar restarting after the app has run is no setback.
        (&[side(Restarting(1))], &[Running], Phase::Running),
        // An exited sidecar does not count: the app's exit decides.
        (&[side(Exited(1))], &[Exited(0)], Phase::Succeeded),
    ];
    for (inits, apps, want) in table {
        let (spec, statuses) = pod("Never", inits, apps);
        assert_eq!(
            pod_phase(&spec, &statuses, false),
            *want,
            "{inits:?} {apps:?}"
        );
    }
}

#[test]
fn restart_policy_defaults_to_always() {
    assert_eq!(RestartPolicy::of(None), RestartPolicy::Always);
    assert_eq!(
        RestartPolicy::of(Some("OnFailure")),
        RestartPolicy::OnFailure
    );
    assert_eq!(RestartPolicy::of(Some("Never")), RestartPolicy::Never);
    assert!(Phase::Failed.is_terminal() && !Phase::Running.is_terminal());
    assert_eq!(Phase::Succeeded.to_string(), "Succeeded");
}

/// The conditions as `kubectl describe` would list them, one per line.
fn describe(spec: &PodSpec, statuses: &[ContainerStatus], terminal: bool) -> String {
    let phase = pod_phase(spec, statuses, terminal);
    let mut out = format!("phase: {phase}\n");
    for c in conditions(spec, statuses, phase) {
        let line = format!(
            "  {:<16} {:<6} {}",
            c.type_,
            c.status,
            c.reason.unwrap_or_default()
        );
        out.push_str(line.trim_end());
        out.push('\n');
        if let Some(message) = c.message {
            out.push_str(&format!("    {message}\n"));
        }
    }
    out
}

#[test]
fn conditions_through_a_pods_life() {
    let mut out = String::new();
    let steps: &[(&str, Inits, &[S])] = &[
        (
            "init container running",
            &[(container("init"), Running)],
            &[Waiting, Waiting],
        ),
        (
            "initialized, creating",
            &[(container("init"), Exited(0))],
            &[Waiting, Missing],
        ),
        (
            "one ready",
            &[(container("init"), Exited(0))],
            &[Running, Restarting(1)],
        ),
        (
            "both ready",
            &[(container("init"), Exited(0))],
            &[Running, Running],
        ),
        (
            "all done",
            &[(container("init"), Exited(0))],
            &[Exited(0), Exited(0)],
        ),
    ];
    for (title, inits, apps) in steps {
        let (spec, mut statuses) = pod("OnFailure", inits, apps);
        // The one restarting is not ready.
        for s in &mut statuses {
            if s.state.as_ref().is_some_and(|st| st.waiting.is_some()) {
                s.ready = false;
            }
        }
        out.push_str(&format!(
            "== {title}\n{}",
            describe(&spec, &statuses, false)
        ));
    }
    let (spec, statuses) = pod("Never", &[], &[Exited(1)]);
    out.push_str(&format!("== failed\n{}", describe(&spec, &statuses, false)));
    insta::assert_snapshot!(out);
}

#[test]
fn ready_follows_containers_ready() {
    let (spec, statuses) = pod("Always", &[], &[Running, Running]);
    let all = conditions(&spec, &statuses, Phase::Running);
    let kinds: Vec<_> = all
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Initialized", "True"),
            ("Ready", "True"),
            ("ContainersReady", "True")
        ]
    );
    let (spec, mut statuses) = pod("Always", &[], &[Running, Running]);
    statuses[1].ready = false;
    let all = conditions(&spec, &statuses, Phase::Running);
    assert_eq!(all[1].status, "False");
    assert_eq!(all[1].reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        all[1].message.as_deref(),
        Some("containers with unready status: [log]")
    );
}

#[test]
fn terminated_reasons() {
    assert_eq!(terminated_reason(0, false), "Completed");
    assert_eq!(terminated_reason(1, false), "Error");
    assert_eq!(terminated_reason(137, true), "OOMKilled");
    assert_eq!(terminated_reason(0, true), "OOMKilled");
}
