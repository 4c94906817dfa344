// The digits MLP in JavaScript: plugins/digits-mlp, written as a Lightning user would. The
// same model with the same seed gives the same losses as the Rust plugin (all the math runs
// in the host).

import { LightningModule, LightningDataModule, Dataset, Tensor, nn, F, optim, exportPlugin, aten, torch } from "../../sdk/js/lthost.js";

// The generic ATen surface from JavaScript (tests/e2e/languages.rs): an operator's error is an
// Error the plugin catches; grad mode is a scope.
function probeGenericOps() {
  const a = aten.call("aten::ones", [1, 3], { dtype: aten.dtype("float32") });
  try {
    aten.call("aten::mm", a, a);
  } catch (e) {
    console.error(`probe caught: ${e.message}`);
  }
  const filled = aten.call("aten::masked_fill.Scalar", a, aten.call("aten::gt.Scalar", a, 0.5), aten.float(-1));
  console.error(`probe masked_fill: ${Array.from(filled.toF32List()).join(",")}`);
  const w = torch.ones([2]);
  w.setRequiresGrad(true);
  const tracked = aten.noGrad(() => aten.call("aten::mul.Scalar", w, 2).requiresGrad());
  console.error(`probe no_grad: tracked=${tracked} after=${aten.call("aten::mul.Scalar", w, 2).requiresGrad()}`);
  // The generated, typed operators: named parameters in a last object, a float parameter
  // taking a plain number, several results as an array.
  const b = aten.cumsum(a, 1);
  const s = aten.sum_dim_intlist(b, [1], { keepdim: true });
  const [values, indices] = aten.max_dim(b, 1);
  const slope = aten.leaky_relu(aten.neg(b), { negative_slope: 0.5 });
  console.error(`probe typed: ${Array.from(s.toF32List())} ${aten.size(s, 1)} ${Array.from(values.toF32List())} ` +
    `${Array.from(indices.toI64List())} ${Array.from(slope.toF32List())}`);
  try {
    aten.mm(a, a);
  } catch (e) {
    console.error(`probe typed caught: ${e.message}`);
  }
}

class DigitsMlp extends LightningModule {
  static defaults = { hidden: 128, dropout: 0.1, lr: 0.003, batch_size: 32, probe_calls: 0, probe_errors: false };

  constructor(hp) {
    super();
    if (hp.probe_errors) probeGenericOps();
    this.hidden = new nn.Linear(64, hp.hidden);
    this.dropout = new nn.Dropout(hp.dropout);
    this.out = new nn.Linear(hp.hidden, 10);
  }

  forward(x) {
    return this.out.forward(this.dropout.forward(this.hidden.forward(x).relu()));
  }

  trainingStep([x, y]) {
    // Host calls made for nothing but their cost (make bench).
    for (let i = 0; i < this.hparams.probe_calls; i++) x.numel();
    const loss = F.crossEntropy(this.forward(x), y);
    this.log("train_loss", loss, { progBar: true });
    return loss;
  }

  evaluate([x, y], prefix) {
    const logits = this.forward(x);
    this.log(`${prefix}_loss`, F.crossEntropy(logits, y), { progBar: true });
    this.log(`${prefix}_acc`, logits.argmax(1).eq(y).float().mean(), { progBar: true });
  }

  validationStep(batch) { this.evaluate(batch, "val"); }
  testStep(batch) { this.evaluate(batch, "test"); }
  predictStep([x]) { return this.forward(x).softmax(-1); }

  configureOptimizers() {
    return optim.Adam({ lr: this.hparams.lr });
  }
}

// digits.safetensors from the granted data directory: uint8 pixels 0..16, labels.
class Digits extends LightningDataModule {
  static defaults = { batch_size: 32, data_file: "digits.safetensors" };

  constructor(hp) {
    super();
    this.batchSize = hp.batch_size;
    this.file = hp.data_file;
  }

  setup() {
    this.splits = new Map(Tensor.load(this.file));
  }

  split(name, shuffle) {
    const x = this.splits.get(`${name}_images`).float().div(16);
    return new Dataset([x, this.splits.get(`${name}_labels`)], { batchSize: this.batchSize, shuffle });
  }

  trainDataloader() { return this.split("train", true); }
  valDataloader() { return this.split("val", false); }
  testDataloader() { return this.split("test", false); }
}

export const { lightningModule, dataModule } = exportPlugin(DigitsMlp, Digits);
