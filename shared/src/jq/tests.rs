use std::collections::BTreeMap;

use super::*;

fn event(content_type: &str, body: &str) -> Event {
    Event {
        id: "evt_1".into(),
        source_id: "shop".into(),
        event_type: "order.paid".into(),
        received_at: "2026-01-02T03:04:05.678Z".parse().unwrap(),
        content_type: Some(content_type.into()),
        dedup_key: "once:evt_1".into(),
        headers: BTreeMap::from([("x-shop".to_string(), "eu".to_string())]),
        body: Bytes::from(body.to_string()),
        enqueued: true,
    }
}

fn json(value: &Val) -> serde_json::Value {
    serde_json::from_str(&value.to_string()).unwrap()
}

/// Runs on the test's thread: only for programs that stay within their limits.
fn here(code: &str, input: Val, mode: Mode) -> Result<Output, RunError> {
    compile(code).unwrap().run_here(
        input,
        mode,
        Limits::default(),
        Box::new(|e| panic!("over budget: {e:?}")),
    )
}

#[test]
fn input_shapes() {
    let e = event("application/json", r#"{"amount": 12, "tags": ["a"]}"#);
    assert_eq!(
        json(&event_input(&e)),
        serde_json::json!({
            "type": "order.paid",
            "source": "shop",
            "received_at": "2026-01-02T03:04:05.678Z",
            "headers": {"x-shop": "eu"},
            "body": {"amount": 12, "tags": ["a"]},
        })
    );
    let form = event(
        "application/x-www-form-urlencoded; charset=utf-8",
        "a=1&b=x+y&a=2",
    );
    assert_eq!(
        json(&event_input(&form))["body"],
        serde_json::json!({"a": ["1", "2"], "b": "x y"})
    );
    let text = event("text/plain", "not json");
    assert_eq!(json(&event_input(&text))["body"], "not json");
}

#[test]
fn filters_are_truthy_on_their_first_output() {
    let input = || event_input(&event("application/json", r#"{"amount": 12}"#));
    let pass = |code| here(code, input(), Mode::Filter);
    assert_eq!(pass(".body.amount > 10"), Ok(Output::Pass(true)));
    assert_eq!(pass(".body.amount > 100"), Ok(Output::Pass(false)));
    assert_eq!(pass(".body.missing"), Ok(Output::Pass(false)), "null");
    assert_eq!(pass("empty"), Ok(Output::Pass(false)), "no output");
    assert_eq!(pass("1, false"), Ok(Output::Pass(true)), "first output");
    assert_eq!(
        pass(r#".type | startswith("order.")"#),
        Ok(Output::Pass(true))
    );
    assert!(matches!(
        pass(".body.amount | error"),
        Err(RunError::Failed(_))
    ));
}

#[test]
fn transforms_produce_one_json_document() {
    let input = || event_input(&event("application/json", r#"{"amount": 12}"#));
    let body = |code| here(code, input(), Mode::Transform);
    assert_eq!(
        body(r#"{kind: .type, cents: (.body.amount * 100)}"#),
        Ok(Output::Body(Bytes::from(
            r#"{"kind":"order.paid","cents":1200}"#
        )))
    );
    assert_eq!(body("empty"), Err(RunError::NoOutput));
    assert_eq!(body("1, 2"), Err(RunError::TooManyOutputs));
    assert!(matches!(body(".body.amount.x"), Err(RunError::Failed(_))));
    assert!(matches!(body("nan"), Err(RunError::NotJson(_))));
    assert_eq!(
        body(r#""x" * 2000000"#),
        Err(RunError::OutputTooLarge),
        "output size is bounded"
    );
}

#[test]
fn the_environment_is_not_reachable() {
    let input = || event_input(&event("application/json", "{}"));
    assert_eq!(
        here("env", input(), Mode::Transform),
        Ok(Output::Body(Bytes::from("{}")))
    );
    assert!(matches!(
        here("halt", input(), Mode::Transform),
        Err(RunError::Failed(_))
    ));
    assert!(compile("$ENV").is_err());
}

#[test]
fn compile_errors_carry_positions() {
    let e = compile(".body |").unwrap_err();
    assert_eq!((e.line, e.column), (1, 8), "{e}");
    let e = compile(".a and\n  nope(1)").unwrap_err();
    assert_eq!((e.line, e.column), (2, 3), "{e}");
    assert!(e.message.contains("nope/1"), "{e}");
    let e = compile("{a: (1}").unwrap_err();
    assert!(e.to_string().starts_with("line 1, column"), "{e}");
    assert!(compile("").is_err());
    assert!(compile(&"1+".repeat(MAX_PROGRAM_BYTES)).is_err());
    assert!(compile(r#"[range(3)] | map(. * 2) | add"#).is_ok());
}

#[tokio::test]
async fn runaway_programs_are_stopped_and_not_run_again() {
    let input = || event_input(&event("application/json", "{}"));
    let limits = Limits {
        max_steps: 200_000,
        max_time: Duration::from_millis(200),
        ..Limits::default()
    };
    for code in [
        "def f: f; f",
        "def f: 1 + f; f",
        "[range(1e9)]",
        "last(range(1e12))",
        "[limit(1e9; repeat(1))]",
    ] {
        let program = Arc::new(compile(code).unwrap());
        let outcome = program.run(input(), Mode::Transform, limits).await;
        assert!(
            matches!(outcome, Err(RunError::Exceeded(_))),
            "{code}: {outcome:?}"
        );
        assert_eq!(
            program.run(input(), Mode::Transform, limits).await,
            Err(RunError::Quarantined),
            "{code}"
        );
    }
    // The evaluators still work.
    let fine = Arc::new(compile("[range(5)] | add").unwrap());
    assert_eq!(
        fine.run(input(), Mode::Transform, limits).await,
        Ok(Output::Body(Bytes::from("10")))
    );
}

#[tokio::test]
async fn prepare_filters_transforms_and_fails() {
    let now = Utc::now();
    let mut sub = Subscription::new(
        crate::domain::new_id("sub"),
        "https://example.com/hook",
        crate::domain::Secret::new("whsec_b2xk"),
        now,
    );
    let e = event("application/json", r#"{"amount": 12}"#);
    assert!(matches!(
        prepare(&e, &sub).await,
        Prepared::Deliver(Cow::Borrowed(_))
    ));
    sub.filter = Some(".body.amount > 100".into());
    assert!(matches!(prepare(&e, &sub).await, Prepared::FilteredOut));
    sub.filter = Some(".body.amount > 10".into());
    sub.transform = Some("{cents: (.body.amount * 100)}".into());
    sub.updated_at += chrono::Duration::seconds(1);
    match prepare(&e, &sub).await {
        Prepared::Deliver(delivered) => {
            assert_eq!(delivered.body, Bytes::from(r#"{"cents":1200}"#));
            assert_eq!(delivered.content_type.as_deref(), Some("application/json"));
            assert_eq!(delivered.id, e.id);
        }
        other => panic!("{other:?}"),
    }
    sub.transform = Some(".body.amount.x".into());
    sub.updated_at += chrono::Duration::seconds(1);
    match prepare(&e, &sub).await {
        Prepared::Failed(message) => assert!(message.starts_with("transform: "), "{message}"),
        other => panic!("{other:?}"),
    }
}
