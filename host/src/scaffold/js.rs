//! The JavaScript template: `app.js` on the JS SDK (a copy of sdk/js/lthost.js beside it),
//! built with componentize-js (`COMPONENTIZE_JS`, else on the PATH).

use anyhow::{Context as _, Result};

use super::Template;

const APP_JS: &str = r#"// {name}: a LightningModule and a DataModule for lthost (`lthost init` template).
// Learns y = 0.5 * sum(x) from samples with a two-layer MLP.

import { LightningModule, LightningDataModule, Dataset, nn, F, optim, torch, exportPlugin } from "./lthost.js";

class Model extends LightningModule {
  static defaults = { lr: 0.01, hidden: 32 };

  constructor(hp) {
    super();
    this.hidden = new nn.Linear(8, hp.hidden);
    this.out = new nn.Linear(hp.hidden, 1);
  }

  forward(x) {
    return this.out.forward(this.hidden.forward(x).relu());
  }

  trainingStep([x, y]) {
    const loss = F.mseLoss(this.forward(x), y);
    this.log("train_loss", loss, { progBar: true });
    return loss;
  }

  validationStep([x, y]) {
    this.log("val_loss", F.mseLoss(this.forward(x), y), { progBar: true });
  }

  configureOptimizers() {
    return optim.Adam({ lr: this.hparams.lr });
  }
}

class Data extends LightningDataModule {
  static defaults = { samples: 512, batch_size: 32 };

  constructor(hp) {
    super();
    this.hp = hp;
  }

  setup() {
    this.splits = [0, 1].map(() => {
      const x = torch.randn([this.hp.samples, 8]);
      return [x, x.sum(1, true).mul(0.5)];
    });
  }

  trainDataloader() { return new Dataset(this.splits[0], { batchSize: this.hp.batch_size, shuffle: true }); }
  valDataloader() { return new Dataset(this.splits[1], { batchSize: this.hp.batch_size }); }
}

export const { lightningModule, dataModule } = exportPlugin(Model, Data);
"#;

pub fn files(name: &str) -> Result<Template> {
    let sdk_js = super::sdk_files("sdk/js/")
        .into_iter()
        .find_map(|(rel, text)| (rel == "lthost.js").then_some(text))
        .context("this lthost was built without the JS SDK")?;
    let build = format!(
        "mkdir -p build\n\"${{COMPONENTIZE_JS:-componentize-js}}\" app.js -w wit -n plugin -d http fetch-event -o build/app.wasm\nlthost manifest build/app.wasm --from lthost.toml --output {name}.wasm"
    );
    Ok(Template {
        files: vec![
            ("app.js".to_string(), APP_JS.replace("{name}", name)),
            ("lthost.js".to_string(), sdk_js),
            (".gitignore".to_string(), "/build\n/lightning_logs\n*.wasm\n".to_string()),
        ],
        build,
        source: "app.js",
    })
}
