//! A callback plugin whose checkpoint state is 120 MiB of JSON (lthost's adversarial suite):
//! more than safetensors lets a header hold, so lthost must keep it in a tensor, verify
//! each checkpoint loads before removing an older one, and give it back whole on resume.
//! It counts the batches it saw, and its `load_state_dict` refuses a state cut short.

use lthost_sdk::callback::{nothing, Callback, HookInfo, HookResult};
use lthost_sdk::export_callback;
use lthost_sdk::serde_json::{json, Value};

const BLOB: usize = 120 << 20;

struct Hoarder {
    batches: u64,
}

impl Callback for Hoarder {
    fn new() -> Self {
        Hoarder { batches: 0 }
    }

    fn name(&self) -> String {
        "state-hoarder".into()
    }

    fn hooks() -> Vec<&'static str> {
        vec!["on_train_batch_end"]
    }

    fn on_hook(&mut self, _hook: &str, _info: &HookInfo) -> Result<HookResult, String> {
        self.batches += 1;
        let mut r = nothing();
        r.logs.push(("hoarder_batches".into(), self.batches as f64));
        Ok(r)
    }

    fn state_dict(&self) -> Option<Value> {
        Some(json!({"batches": self.batches, "blob": "x".repeat(BLOB)}))
    }

    fn load_state_dict(&mut self, state: Value) -> Result<(), String> {
        let blob = state["blob"].as_str().map_or(0, str::len);
        if blob != BLOB {
            return Err(format!("the restored state holds {blob} bytes of blob, not {BLOB}"));
        }
        self.batches = state["batches"].as_u64().ok_or("no batch count in the state")?;
        println!("restored {} batches", self.batches);
        Ok(())
    }
}

export_callback!(Hoarder);
