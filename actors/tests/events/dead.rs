//! The reader of `<queue>.dead` against the real RabbitMQ: messages the listener's queue
//! dead-letters (here rejected by the test itself, as the listener rejects them) are listed
//! newest first without being taken away, in the same order every time, and replayed to the
//! queue they died in, each once.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use troupe_actors::events::dead::{DeadLetterConfig, DeadLetterQueue};
use troupe_core::messages::{ListDeadLetters, ReplayDeadLetters};

use crate::helpers::*;

/// The listener's topology for `names` (queue dead-lettering to `<queue>.dlx` -> `.dead`),
/// and three events rejected from the queue into `.dead`, oldest first.
async fn three_dead(probe: &troupe_actors::events::publisher::AmqpChannel, names: &Names) {
    let ch = &probe.channel;
    let (dlx, dead) = (format!("{}.dlx", names.queue), format!("{}.dead", names.queue));
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    let fanout = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    ch.exchange_declare(dlx.as_str().into(), lapin::ExchangeKind::Fanout, fanout, FieldTable::default())
        .await
        .expect("dlx");
    ch.queue_declare(dead.as_str().into(), durable, FieldTable::default()).await.expect(".dead");
    ch.queue_bind(
        dead.as_str().into(),
        dlx.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bound");
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(dlx.as_str().into()));
    ch.queue_declare(names.queue.as_str().into(), durable, args).await.expect("queue");
    for n in 1..=3 {
        let body = format!(r#"{{"id":"dead-{n}","name":"event","data":"number {n}"}}"#);
        let props = BasicProperties::default().with_message_id(format!("dead-{n}").into());
        let confirm = ch
            .basic_publish(
                "".into(),
                names.queue.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .expect("published");
        drop(confirm);
        let got = eventually(Duration::from_secs(5), "the event in the queue", || async {
            ch.basic_get(names.queue.as_str().into(), BasicGetOptions::default()).await.ok().flatten()
        })
        .await;
        got.delivery.acker.reject(BasicRejectOptions { requeue: false }).await.expect("rejected");
    }
    eventually(Duration::from_secs(5), "three in .dead", || async {
        (ready_in(probe, &dead).await == 3).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn dead_letters_are_peeked_in_order_and_each_replayed_once_to_their_queue() {
    let names = Names::new();
    let probe = test_channel(&names).await;
    three_dead(&probe, &names).await;
    let config = DeadLetterConfig {
        url: rabbit_url(),
        queue: names.queue.clone(),
        connect_within: Duration::from_secs(5),
        within: Duration::from_secs(8),
        connection_name: format!("{}-dead", names.tag),
    };
    let reader = DeadLetterQueue::start(config);

    let data = |letters: &[troupe_core::messages::DeadLetter]| {
        letters.iter().map(|l| l.event.data.clone()).collect::<Vec<_>>()
    };
    let first = reader.send(ListDeadLetters(10)).await.expect("answers").expect("listed");
    assert_eq!(data(&first), ["number 3", "number 2", "number 1"], "newest first");
    assert!(first.iter().all(|l| l.reason == format!("rejected in {}", names.queue)), "{first:?}");
    let again = reader.send(ListDeadLetters(2)).await.expect("answers").expect("listed");
    assert_eq!(data(&again), ["number 3", "number 2"], "the same, in the same order, `limit` of them");
    assert_eq!(again[0].seq, first[0].seq);
    let dead = format!("{}.dead", names.queue);
    assert_eq!(ready_in(&probe, &dead).await, 3, "a listing takes nothing away");

    let one = reader.send(ReplayDeadLetters(Some(first[1].seq))).await.expect("answers");
    assert_eq!(one, Ok(1));
    let left = reader.send(ListDeadLetters(10)).await.expect("answers").expect("listed");
    assert_eq!(data(&left), ["number 3", "number 1"], "the others kept, in order");
    assert_eq!(reader.send(ReplayDeadLetters(None)).await.expect("answers"), Ok(2));
    assert_eq!(ready_in(&probe, &dead).await, 0, ".dead is empty");
    assert_eq!(ready_in(&probe, &names.queue).await, 3, "each replayed once, to its queue");
    let replayed = probe.channel.basic_get(names.queue.as_str().into(), BasicGetOptions::default()).await;
    let replayed = replayed.expect("get").expect("a message");
    assert_eq!(replayed.delivery.properties.message_id().as_ref().map(|s| s.as_str()), Some("dead-2"));
    assert!(!replayed.delivery.redelivered, "a fresh publish");
    cleanup(&probe, &names).await;
}
