//! The port contract suite over the AWS adapters (DynamoDB, SQS) on a local moto server, plus
//! checks of what is specific to them: long-delay hops, batching, the dead-letter queue, TTL
//! attributes and the typed conditional-failure path. One moto server serves the whole binary.

hookhub::contract_tests!(hookhub_tests::moto::aws_backend);

mod aws_specific {
    use std::collections::{BTreeSet, HashMap};
    use std::time::{Duration, Instant};

    use chrono::{DateTime, TimeDelta, Utc};
    use hookhub::aws::aws_sdk_dynamodb::operation::put_item::PutItemError;
    use hookhub::aws::aws_sdk_dynamodb::types::{
        AttributeValue, ReturnValuesOnConditionCheckFailure, TimeToLiveStatus,
    };
    use hookhub::aws::aws_sdk_sqs::types::QueueAttributeName;
    use hookhub::aws::{Aws, AwsSettings, QueueRef, SqsQueue};
    use hookhub::contract::{sample_attempt, sample_event, sample_subscription};
    use hookhub::domain::{EventSummary, Subscription, Task};
    use hookhub::ports::{
        EventQuery, EventStore, InsertOutcome, StoreError, SubscriptionStore, TaskQueue,
    };
    use hookhub_tests::moto::fresh_aws;

    type Item = HashMap<String, AttributeValue>;

    const HOUR: Duration = Duration::from_secs(3600);
    const PATIENCE: Duration = Duration::from_secs(15);

    async fn queue(aws: &Aws) -> SqsQueue {
        aws.queue().await.expect("queue")
    }

    fn deliver(n: u32, not_before: Option<DateTime<Utc>>) -> Task {
        Task::Deliver {
            event_id: "evt_aws".into(),
            subscription_id: format!("sub_{n:02}"),
            attempt: n,
            not_before,
            series_start: None,
        }
    }

    async fn queue_counts(aws: &Aws, url: &str) -> (u64, u64, u64) {
        let attributes = aws
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        )
    }

    async fn raw_item(aws: &Aws, table: &str, key: &[(&str, &str)]) -> Item {
        let mut request = aws
            .dynamodb()
            .get_item()
            .table_name(table)
            .consistent_read(true);
        for (name, value) in key {
            request = request.key(*name, AttributeValue::S((*value).to_owned()));
        }
        request
            .send()
            .await
            .expect("GetItem")
            .item
            .expect("item exists")
    }

    /// An item of the events table by id, under the layout's key.
    async fn raw_event_item(aws: &Aws, id: &str) -> Item {
        hookhub_tests::moto::events_item(aws, id)
            .await
            .expect("item exists")
    }

    /// The first page of a source's events.
    async fn listed(store: &impl EventStore, source: &str) -> Vec<EventSummary> {
        store
            .list_events(&EventQuery {
                source_id: Some(source.into()),
                before: None,
                limit: 10,
            })
            .await
            .unwrap()
    }

    fn number(item: &Item, name: &str) -> i64 {
        match item.get(name) {
            Some(AttributeValue::N(n)) => n.parse().expect("numeric attribute"),
            other => panic!("{name} should be a number, is {other:?}"),
        }
    }

    /// A task sent with more than SQS's 900 s is sent with the maximum delay and carries its
    /// due time in the body.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_delay_is_sent_with_the_maximum_delay() {
        let aws = fresh_aws().await;
        let q = queue(&aws).await;
        q.send(&deliver(1, None), Duration::from_secs(901))
            .await
            .expect("send with a long delay");
        q.send(
            &Task::Dispatch {
                event_id: "evt_later".into(),
                event: None,
                sent_first: None,
            },
            Duration::from_secs(7200),
        )
        .await
        .expect("send a dispatch with a long delay");
        assert_eq!(
            queue_counts(&aws, q.queue_url()).await,
            (0, 0, 2),
            "both messages wait in the queue, delayed"
        );
        assert!(q
            .receive(10, Duration::from_secs(5))
            .await
            .unwrap()
            .is_empty());
    }

    /// The hop itself, compressed: a task whose `not_before` is 4 s away arrives at once (as after
    /// a 900 s hop that ends early); `receive` re-sends it with the remaining delay and returns it
    /// only once it is due.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receive_defers_a_task_not_yet_due() {
        let aws = fresh_aws().await;
        let q = queue(&aws).await;
        let due = Utc::now() + TimeDelta::seconds(4);
        let task = deliver(7, Some(due));
        aws.sqs()
            .send_message()
            .queue_url(q.queue_url())
            .message_body(task.to_json())
            .send()
            .await
            .expect("raw send without delay");

        let first = q.receive(10, Duration::from_secs(30)).await.unwrap();
        assert!(
            first.is_empty(),
            "a task not yet due is not returned: {first:?}"
        );
        assert_eq!(
            queue_counts(&aws, q.queue_url()).await,
            (0, 0, 1),
            "it was re-sent with a delay and the original deleted"
        );

        let deadline = Instant::now() + PATIENCE;
        let got = loop {
            let got = q.receive(10, Duration::from_secs(30)).await.unwrap();
            if !got.is_empty() {
                break got;
            }
            assert!(
                Instant::now() < deadline,
                "the deferred task never came back"
            );
        };
        assert!(
            Utc::now() >= due - TimeDelta::milliseconds(500),
            "returned before its time"
        );
        assert_eq!(got.len(), 1);
        assert_eq!(
            Task::from_json(&got[0].body).unwrap(),
            task,
            "the task is intact"
        );
        q.ack(&got[0].receipt).await.unwrap();
    }

    /// The Lambda path: bodies delivered by the event source mapping, not by `receive`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn defer_if_not_due_resends_only_future_tasks() {
        let aws = fresh_aws().await;
        let q = queue(&aws).await;
        let later = deliver(1, Some(Utc::now() + TimeDelta::seconds(60))).to_json();
        let past = deliver(2, Some(Utc::now() - TimeDelta::seconds(60))).to_json();
        assert!(
            q.defer_if_not_due(&later).await.unwrap(),
            "future task deferred"
        );
        assert!(
            !q.defer_if_not_due(&past).await.unwrap(),
            "due task handled now"
        );
        assert!(!q
            .defer_if_not_due(&deliver(3, None).to_json())
            .await
            .unwrap());
        assert!(
            !q.defer_if_not_due("not json").await.unwrap(),
            "left to the parser"
        );
        assert_eq!(
            queue_counts(&aws, q.queue_url()).await,
            (0, 0, 1),
            "only the future task was re-sent, delayed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batch_of_25_tasks_arrives_once_each() {
        let aws = fresh_aws().await;
        let q = queue(&aws).await;
        let tasks: Vec<(Task, Duration)> = (1..=25)
            .map(|n| (deliver(n, None), Duration::ZERO))
            .collect();
        q.send_batch(&tasks).await.expect("send_batch of 25");
        let expected: BTreeSet<String> = tasks.iter().map(|(t, _)| t.to_json()).collect();
        let mut seen = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        while seen.len() < expected.len() && Instant::now() < deadline {
            for m in q.receive(10, Duration::from_secs(60)).await.unwrap() {
                seen.push(m.body.clone());
                q.ack(&m.receipt).await.unwrap();
            }
        }
        assert_eq!(seen.len(), 25, "every task arrives exactly once");
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_message_is_dead_lettered_with_its_reason() {
        let aws = fresh_aws().await;
        let q = queue(&aws).await;
        let body = "{not a task";
        aws.sqs()
            .send_message()
            .queue_url(q.queue_url())
            .message_body(body)
            .send()
            .await
            .expect("raw send");
        let deadline = Instant::now() + PATIENCE;
        let message = loop {
            if let Some(m) = q.receive(1, Duration::from_secs(30)).await.unwrap().pop() {
                break m;
            }
            assert!(Instant::now() < deadline, "message never received");
        };
        assert!(Task::from_json(&message.body).is_err());
        q.dead_letter(&message, "malformed task: expected a JSON object")
            .await
            .expect("dead_letter");

        let dead = aws
            .sqs()
            .receive_message()
            .queue_url(q.dead_letter_queue_url())
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the DLQ")
            .messages
            .unwrap_or_default();
        assert_eq!(dead.len(), 1, "the message is in the DLQ");
        assert_eq!(dead[0].body(), Some(body), "body kept verbatim");
        let reason = dead[0]
            .message_attributes()
            .and_then(|a| a.get("reason"))
            .and_then(|v| v.string_value());
        assert_eq!(reason, Some("malformed task: expected a JSON object"));
        assert_eq!(
            queue_counts(&aws, q.queue_url()).await,
            (0, 0, 0),
            "and gone from the task queue"
        );
    }

    /// An attempts table made for the earlier layout (keyed by event, with `by-subscription`)
    /// is refused at start with both keys named, rather than failing every write later.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_of_another_layout_is_refused() {
        let settings = AwsSettings::with_prefix(&hookhub_tests::moto::unique_prefix());
        let aws = Aws::new(&hookhub_tests::moto::sdk_config().await, settings.clone());
        hookhub_tests::moto::create_table_keyed(
            &aws,
            &settings.attempts_table,
            "event_id",
            Some("sk"),
        )
        .await;
        let error = aws
            .ensure_resources()
            .await
            .expect_err("the old attempts table is refused")
            .to_string();
        assert!(
            error.contains("has the key (event_id, sk), this version expects (pk, sk)"),
            "{error}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stored_events_and_attempts_carry_ttl() {
        let aws = fresh_aws().await;
        let store = aws.store();
        let settings = aws.settings().clone();
        for table in [&settings.events_table, &settings.attempts_table] {
            let ttl = aws
                .dynamodb()
                .describe_time_to_live()
                .table_name(table)
                .send()
                .await
                .unwrap()
                .time_to_live_description
                .expect("TTL description");
            assert_eq!(
                ttl.time_to_live_status,
                Some(TimeToLiveStatus::Enabled),
                "{table}"
            );
            assert_eq!(ttl.attribute_name.as_deref(), Some("expires_at"), "{table}");
        }

        let event = sample_event("ttl", "k1");
        assert_eq!(
            store.insert_event(&event, HOUR).await.unwrap(),
            InsertOutcome::Inserted
        );
        let item = raw_event_item(&aws, &event.id).await;
        let retention = 30 * 86_400;
        assert_eq!(
            number(&item, "expires_at"),
            event.received_at.timestamp() + retention
        );
        let Some(AttributeValue::B(payload)) = item.get("p") else {
            panic!("headers and body are stored as one Binary payload: {item:?}");
        };
        assert_eq!(
            hookhub::payload::unpack(payload.as_ref()).unwrap(),
            (event.headers.clone(), event.body.clone()),
            "the payload holds the headers and the body"
        );
        assert!(
            item.contains_key("pending"),
            "in the sweep index until enqueued"
        );
        store.mark_enqueued(&event.id).await.unwrap();
        let item = raw_event_item(&aws, &event.id).await;
        assert!(
            !item.contains_key("pending"),
            "out of the sweep index once enqueued"
        );
        assert_eq!(item.get("enqueued"), Some(&AttributeValue::Bool(true)));

        assert!(
            matches!(
                store.mark_enqueued("evt_missing").await,
                Err(StoreError::NotFound(_))
            ),
            "marking a missing event is NotFound"
        );

        let marker = raw_event_item(&aws, "dedup#ttl#k1").await;
        assert!(
            number(&marker, "expires_at") >= event.received_at.timestamp() + 3600,
            "the dedup marker expires after its window"
        );

        let attempt = sample_attempt(&event.id, "sub_ttl", 1);
        hookhub::ports::AttemptLog::record_attempt(&store, &attempt)
            .await
            .unwrap();
        // The attempt and the plan record its event finds it by.
        let items = hookhub_tests::moto::scan_items(&aws, &settings.attempts_table).await;
        assert_eq!(items.len(), 2, "{items:?}");
        for item in items {
            // The plan outlives the attempts it names, which may start up to a minute after it.
            let plan = item["pk"].as_s().unwrap().starts_with("e#");
            assert_eq!(
                number(&item, "expires_at"),
                attempt.started_at.timestamp() + retention + if plan { 60 } else { 0 },
                "{item:?}"
            );
        }
    }

    /// Duplicates are told apart by the typed conditional failure of the marker's PutItem, which
    /// carries the live marker (`ReturnValuesOnConditionCheckFailure`), so its owner needs no
    /// extra read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duplicate_insert_is_a_typed_conditional_failure() {
        let aws = fresh_aws().await;
        let store = aws.store();
        let events_table = aws.settings().events_table.clone();
        let original = sample_event("gh", "delivery-42");
        assert_eq!(
            store.insert_event(&original, HOUR).await.unwrap(),
            InsertOutcome::Inserted
        );

        // What the adapter relies on: the SDK surfaces the failure and the old item as data.
        let err = aws
            .dynamodb()
            .put_item()
            .table_name(&events_table)
            .set_item(Some(aws.events_table_key("dedup#gh#delivery-42")))
            .condition_expression("attribute_not_exists(id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
            .expect_err("the marker exists");
        let Some(PutItemError::ConditionalCheckFailedException(failed)) = err.as_service_error()
        else {
            panic!("expected ConditionalCheckFailedException, got {err:?}");
        };
        assert_eq!(
            failed.item().and_then(|old| old.get("event_id")),
            Some(&AttributeValue::S(original.id.clone())),
            "the live marker comes back with the failure"
        );

        let mut again = sample_event("gh", "delivery-42");
        again.body = bytes::Bytes::from_static(b"a retry with another body");
        assert_eq!(
            store.insert_event(&again, HOUR).await.unwrap(),
            InsertOutcome::Duplicate(Box::new(original.clone())),
            "the duplicate returns the original"
        );
        let mut same_id = sample_event("gh", "delivery-43");
        same_id.id = original.id.clone();
        assert!(matches!(
            store.insert_event(&same_id, HOUR).await,
            Err(StoreError::Conflict(_))
        ));
        let page = listed(&store, "gh").await;
        assert_eq!(page, [EventSummary::from(&original)], "one event stored");
    }

    /// More bodies than one 16 MB BatchGetItem answer holds (the sweep reads whole events): the
    /// unprocessed keys are fetched too. The listing reads summaries only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listing_large_events_spans_several_batch_gets() {
        let aws = fresh_aws().await;
        let store = aws.store();
        let body: bytes::Bytes = (0..256 * 1024u32).map(|i| (i % 253) as u8).collect();
        let mut ids = Vec::new();
        for i in 0..66 {
            let mut event = sample_event("big", &format!("k{i}"));
            event.body = body.clone();
            store.insert_event(&event, HOUR).await.unwrap();
            ids.push(event.id);
        }
        ids.reverse();
        let listed = store
            .list_events(&EventQuery {
                source_id: None,
                before: None,
                limit: 100,
            })
            .await
            .unwrap();
        assert_eq!(
            listed.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            ids,
            "all 66 events, newest first"
        );
        assert!(listed.iter().all(|e| e.size == body.len()), "sizes listed");
        let unenqueued = store.list_unenqueued(Utc::now(), 100).await.unwrap();
        ids.reverse();
        assert_eq!(
            unenqueued.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            ids,
            "all 66 events, oldest first"
        );
        assert!(unenqueued.iter().all(|e| e.body == body), "bodies intact");
    }

    /// Events carry their body size, so listings never read the payload.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listing_sizes_events_from_the_stored_size() {
        let aws = fresh_aws().await;
        let store = aws.store();
        let mut small = sample_event("gh", "small");
        small.body = bytes::Bytes::from(vec![b'x'; 1000]);
        let mut large = sample_event("gh", "large");
        large.body = bytes::Bytes::from(vec![0u8; 3000]);
        for event in [&small, &large] {
            store.insert_event(event, HOUR).await.unwrap();
        }
        let item = raw_event_item(&aws, &small.id).await;
        assert_eq!(number(&item, "bs"), 1000);
        let listed = listed(&store, "gh").await;
        // Ids made in the same millisecond may sort either way: expect the id order.
        let mut expected = vec![EventSummary::from(&large), EventSummary::from(&small)];
        expected.sort_by(|a, b| b.id.cmp(&a.id));
        assert_eq!(
            listed, expected,
            "both listed with their sizes, newest first"
        );
    }

    /// The dispatcher's UpdateItem writes the attribute shapes a whole-item PutItem writes
    /// (`enabled` as BOOL…), so the item is the same as if the subscription had been replaced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disabling_writes_what_a_put_writes() {
        let aws = fresh_aws().await;
        let store = aws.store();
        let table = &aws.settings().subscriptions_table;
        let sub = sample_subscription();
        store.create_subscription(&sub).await.unwrap();
        let at = sub.updated_at + TimeDelta::nanoseconds(1_500_000_007);
        let reason = hookhub::decision::DisabledReason::Gone;
        assert_eq!(
            store
                .disable_subscription(&sub.id, reason, at)
                .await
                .unwrap(),
            hookhub::ports::DisableOutcome::Disabled
        );
        let disabled = raw_item(&aws, table, &[("id", &sub.id)]).await;
        assert_eq!(disabled.get("enabled"), Some(&AttributeValue::Bool(false)));
        assert_eq!(
            disabled.get("disabled_reason"),
            Some(&AttributeValue::S("gone".to_owned()))
        );

        let expected = Subscription {
            enabled: false,
            disabled_reason: Some(reason),
            updated_at: at,
            ..sub
        };
        store.update_subscription(&expected).await.unwrap();
        let replaced = raw_item(&aws, table, &[("id", &expected.id)]).await;
        assert_eq!(disabled, replaced, "the same item, attribute for attribute");
    }

    /// Deployed settings name queues by URL: no lookup needed. Setup is idempotent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queue_urls_and_repeated_setup() {
        let aws = fresh_aws().await;
        aws.ensure_resources()
            .await
            .expect("second ensure_resources is a no-op");
        let q = queue(&aws).await;
        let mut settings: AwsSettings = aws.settings().clone();
        settings.queue = QueueRef::Url(q.queue_url().to_owned());
        settings.dead_letter_queue = QueueRef::Url(q.dead_letter_queue_url().to_owned());
        let by_url = Aws::new(&hookhub_tests::moto::sdk_config().await, settings);
        let backend = by_url.backend().await.expect("backend by URL");
        backend
            .queue
            .send(&deliver(1, None), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(queue_counts(&aws, q.queue_url()).await.0, 1);
    }
}
