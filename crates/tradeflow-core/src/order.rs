//! Paper orders: the intent the paper_order step writes to the orders table, at most one per
//! execution.

use serde::{Deserialize, Serialize};

use crate::vocab::Ticker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderSide {
    Buy,
    Sell,
}

/// A paper order intent, one per execution at most (`order_id` derives from `execution_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperOrder {
    pub order_id: String,
    pub execution_id: String,
    pub pipeline_id: String,
    pub user_id: String,
    pub ticker: Ticker,
    pub signal_id: String,
    pub side: OrderSide,
    /// Whole units.
    pub quantity: u64,
    pub entry_price: f64,
    pub stop_price: f64,
    pub target_price: f64,
    /// Always "paper".
    pub mode: String,
    /// Unix seconds.
    pub created_at: i64,
}
