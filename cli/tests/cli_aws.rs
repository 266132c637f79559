//! The main `hookhub` verbs, `tail`, `listen` and the long poll against `hookhub dev --backend
//! aws` on DynamoDB + SQS (moto_server).

mod cli_support;
mod support;

use cli_support::{scenarios, Hub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_verbs_tail_listen_and_long_poll_on_moto() {
    let hub = Hub::aws();
    scenarios::main_verbs(&hub).await;
    scenarios::tail_and_listen(&hub).await;
    scenarios::long_poll(&hub).await;
}
