// The JavaScript SDK for lthost plugins: Lightning's API over lthost's WIT interfaces.
// Tensors are handles to libtorch tensors in the host; every op runs there, with autograd.
//
//   import { LightningModule, LightningDataModule, Dataset, nn, F, optim, exportPlugin } from "./lthost.js";
//   class Mlp extends LightningModule {
//     constructor(hp) { super(); this.hidden = new nn.Linear(64, hp.hidden); ... }
//     trainingStep([x, y], batchIdx) { const loss = F.crossEntropy(...); this.log("train_loss", loss, { progBar: true }); return loss; }
//     configureOptimizers() { return optim.Adam({ lr: this.hparams.lr }); }
//   }
//   export const { lightningModule, dataModule } = exportPlugin(Mlp, MyData);
//
// Built with componentize-js (`-w wit -n plugin`); s64 values are BigInts at the boundary,
// which this SDK converts.

import { Tensor, crossEntropy, nllLoss, mseLoss, l1Loss, binaryCrossEntropyWithLogits } from "lt:plugin/tensor@0.2.0";
import { log as wlog, logScalar } from "lt:plugin/log@0.2.0";
import { Op, setGradEnabled, raise as raiseOp } from "lt:plugin/aten@0.2.0";
import { registerParameter, registerModule } from "lt:plugin/parameters@0.2.0";
import { training } from "lt:plugin/trainer@0.2.0";

export { Tensor };

const big = (xs) => BigInt64Array.from(xs.map((v) => BigInt(v)));

// Tensor methods with torch's names.
const T = Tensor.prototype;
const unary = (op) => function () { return this.unary(op); };
const binary = (op) => function (other) {
  return other instanceof Tensor ? this.binary(op, other) : this.binaryScalar(op, Number(other));
};
const reduce = (op) => function (dim, keepdim = false) {
  const dims = dim === undefined ? [] : Array.isArray(dim) ? dim : [dim];
  return this.reduce(op, big(dims), keepdim);
};
// Tensors made during a step are dropped when it returns (the loss, handed to the host, and
// tensors passed to `keep` excepted): the guest's garbage collector would free their host
// handles only eventually. Keep values across steps with `keep(t)` or as numbers (`item()`).
const DISPOSE = Symbol.dispose || Symbol.for("dispose");
let scope = null;
const track = (r) => {
  if (scope !== null) {
    if (r instanceof Tensor) scope.push(r);
    else if (Array.isArray(r)) r.forEach(track);
  }
  return r;
};
export function keep(t) {
  if (scope !== null) scope = scope.filter((x) => x !== t);
  return t;
}
function inScope(batch, run) {
  scope = [...batch];
  try {
    const out = run();
    keep(out);
    return out;
  } finally {
    const made = scope;
    scope = null;
    for (const t of made) if (typeof t[DISPOSE] === "function") t[DISPOSE]();
  }
}
for (const name of Object.getOwnPropertyNames(T)) {
  const raw = T[name];
  if (name === "constructor" || typeof raw !== "function") continue;
  T[name] = function (...args) { return track(raw.apply(this, args)); };
}
for (const name of Object.getOwnPropertyNames(Tensor)) {
  const raw = Tensor[name];
  if (typeof raw !== "function" || ["length", "name", "prototype"].includes(name)) continue;
  Tensor[name] = (...args) => track(raw.apply(Tensor, args));
}

// Methods whose integer arguments are s64 (BigInt at the boundary) take plain numbers too.
const toBig = (a) => (typeof a === "number" && Number.isInteger(a) ? BigInt(a) : a);
for (const name of ["softmax", "logSoftmax", "unsqueeze", "transpose", "flatten", "narrow", "chunk", "roll", "indexSelect", "argmin", "squeeze"]) {
  const raw = T[name];
  T[name] = function (...args) { return raw.apply(this, args.map(toBig)); };
}
const rawArgmax = T.argmax;
Object.assign(T, {
  relu: unary("relu"), tanh: unary("tanh"), sigmoid: unary("sigmoid"), exp: unary("exp"),
  log: unary("log"), sqrt: unary("sqrt"), abs: unary("abs"), detach: unary("detach"), neg: unary("neg"),
  add: binary("add"), sub: binary("sub"), mul: binary("mul"), div: binary("div"), pow: binary("pow"),
  float() { return this.toDtype("float32"); },
  long() { return this.toDtype("int64"); },
  eq(other) { return other instanceof Tensor ? this.compare("eq", other) : this.compareScalar("eq", Number(other)); },
  sum: reduce("sum"), mean: reduce("mean"), max: reduce("max"), min: reduce("min"),
  argmax(dim, keepdim = false) {
    if (dim === undefined) return rawArgmax.call(this.reshape(big([-1])), 0n, false);
    return rawArgmax.call(this, BigInt(dim), keepdim);
  },
  size() { return Array.from(this.shape(), Number); },
  view(...shape) { return this.reshape(big(shape.flat())); },
});

export const F = {
  crossEntropy: (input, target, { reduction = "mean", labelSmoothing = 0 } = {}) => track(crossEntropy(input, target, reduction, labelSmoothing)),
  nllLoss: (input, target, reduction = "mean") => track(nllLoss(input, target, reduction)),
  mseLoss: (input, target, reduction = "mean") => track(mseLoss(input, target, reduction)),
  l1Loss: (input, target, reduction = "mean") => track(l1Loss(input, target, reduction)),
  binaryCrossEntropyWithLogits: (input, target, reduction = "mean") => track(binaryCrossEntropyWithLogits(input, target, reduction)),
};

// Layers get their parameter path from the property they are assigned to
// (`this.hidden = new nn.Linear(64, 128)` → `hidden.weight`), or from `{ path }`.
class Layer {
  constructor(make, needsPath = true) {
    this.make = make;
    this.layer = needsPath ? undefined : make(undefined);
  }
  bind(path) {
    if (this.layer === undefined) this.layer = this.make(path);
    return this;
  }
  forward(...inputs) {
    if (this.layer === undefined) throw new Error("a layer was used before it was assigned to a module property");
    return this.layer.forward(...inputs); // its operators' results are tracked already
  }
}

export const nn = {
  Linear: class extends Layer {
    constructor(inF, outF, { bias = true, path } = {}) {
      super((p) => new SdkLinear(p, inF, outF, bias));
      if (path) this.bind(path);
    }
  },
  Dropout: class extends Layer {
    constructor(p = 0.5) {
      super(() => new SdkDropout(p), false);
    }
  },
};

const REDUCE = { mean: "mean", sum: "sum", max: "max", min: "min" };

export class LightningModule {
  constructor() {
    // Layers assigned to properties learn their paths.
    // (Class fields are defined, not set: both are caught.)
    return new Proxy(this, {
      set(target, key, value) {
        if (value instanceof Layer) value.bind(String(key));
        target[key] = value;
        return true;
      },
      defineProperty(target, key, desc) {
        if (desc.value instanceof Layer) desc.value.bind(String(key));
        return Reflect.defineProperty(target, key, desc);
      },
    });
  }
  log(name, value, { progBar = false, logger = true, onStep, onEpoch, reduceFx = "mean", batchSize } = {}) {
    const opts = { progBar, logger, onStep, onEpoch, reduceFx: REDUCE[reduceFx], batchSize };
    if (typeof value === "number") logScalar(name, value, opts);
    else wlog(name, value, opts);
  }
  validationStep() {}
  testStep() {}
  onSaveCheckpoint() { return undefined; }
  onLoadCheckpoint() {}
}

export class LightningDataModule {
  setup() {}
  trainDataloader() { return undefined; }
  valDataloader() { return undefined; }
  testDataloader() { return undefined; }
  predictDataloader() { return undefined; }
  stateDict() { return undefined; }
  loadStateDict() {}
}

export class Dataset {
  constructor(columns, { batchSize = 1, shuffle = false, dropLast = false } = {}) {
    Object.assign(this, { columns, batchSize, shuffle, dropLast });
  }
  record() {
    return { columns: this.columns, batchSize: this.batchSize, shuffle: this.shuffle, dropLast: this.dropLast, sampler: undefined };
  }
}

const opt = (tag, val) => ({ algorithm: { tag, val }, groups: [] });
export const optim = {
  SGD: ({ lr, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false }) => opt("sgd", { lr, momentum, dampening, weightDecay, nesterov }),
  Adam: ({ lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0, amsgrad = false } = {}) => opt("adam", { lr, betas, eps, weightDecay, amsgrad }),
  AdamW: ({ lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 1e-2, amsgrad = false } = {}) => opt("adamw", { lr, betas, eps, weightDecay, amsgrad }),
};

const STAGES = { fit: "fit", validate: "validate", test: "test", predict: "predict", "sanity-check": "fit" };
const SPLITS = { train: "trainDataloader", val: "valDataloader", test: "testDataloader", predict: "predictDataloader" };

// The component's exports, calling the given classes. Each class takes the run's
// hyper-parameters merged over its `defaults`.
export function exportPlugin(ModuleClass, DataClass) {
  let module, data;
  const live = (x, what) => {
    if (x === undefined) throw new Error(`lthost called ${what} too early`);
    return x;
  };
  const lightningModule = {
    configure(hparams) {
      const hp = { ...(ModuleClass.defaults ?? {}), ...JSON.parse(hparams) };
      try {
        module = new ModuleClass(hp);
      } catch (e) {
        throw `${ModuleClass.name}: ${e}`;
      }
      module.hparams = hp;
      return JSON.stringify(hp);
    },
    configureOptimizers() {
      const o = live(module, "configure_optimizers").configureOptimizers();
      const list = Array.isArray(o) ? o : [o];
      return { optimizers: list, lrSchedulers: [], automaticOptimization: true };
    },
    saveState() { return live(module, "save_state").onSaveCheckpoint(); },
    loadState(state) {
      try {
        live(module, "load_state").onLoadCheckpoint(state);
      } catch (e) {
        throw `on_load_checkpoint: ${e}`;
      }
    },
    implementedHooks() { return []; },
    onHook() { return 0; },
    trainingStep(batch, batchIdx) { return inScope(batch, () => live(module, "training_step").trainingStep(batch, Number(batchIdx))); },
    validationStep(batch, batchIdx) { inScope(batch, () => live(module, "validation_step").validationStep(batch, Number(batchIdx))); },
    testStep(batch, batchIdx) { inScope(batch, () => live(module, "test_step").testStep(batch, Number(batchIdx))); },
    predictStep(batch, batchIdx) { return inScope(batch, () => live(module, "predict_step").predictStep(batch, Number(batchIdx))); },
  };
  const dataModule = {
    setup(stage, hparams) {
      if (!DataClass) throw "no LightningDataModule was exported";
      const hp = { ...(DataClass.defaults ?? {}), ...JSON.parse(hparams) };
      try {
        data = new DataClass(hp);
        data.hparams = hp;
        data.setup(STAGES[stage]);
      } catch (e) {
        throw `${DataClass.name}.setup: ${e}`;
      }
    },
    dataloader(split) {
      const ds = live(data, "dataloader")[SPLITS[split]]();
      return ds === undefined ? undefined : ds.record();
    },
    streaming() { return undefined; },
    startPass() { throw "this DataModule has no stream"; },
    nextBatch() { return undefined; },
    saveState() { return live(data, "state_dict").stateDict(); },
    loadState(state) {
      try {
        live(data, "load_state_dict").loadStateDict(state);
      } catch (e) {
        throw `load_state_dict: ${e}`;
      }
    },
  };
  return { lightningModule, dataModule };
}

// torch's tensor factories (shapes as plain arrays), drawing from the run's generator.
export const torch = {
  randn: (shape) => Tensor.randn(big(shape)),
  rand: (shape) => Tensor.rand(big(shape)),
  zeros: (shape, dtype = "float32") => Tensor.zeros(big(shape), dtype),
  ones: (shape, dtype = "float32") => Tensor.ones(big(shape), dtype),
};

// Every allowed ATen operator: `aten.call("aten::masked_fill.Scalar", x, mask, 0.0)` resolves
// the operator once and runs it in the host, with autograd. An operator's error is an Error
// with torch's message, to catch as torch code catches a RuntimeError. Numbers with no
// fraction pass as ints (JavaScript cannot tell 2 from 2.0): write `aten.float(2)` where the
// schema's Scalar must be a float; `aten.dtype("float64")` for a dtype.
const ops = new Map();
const resolve = (name) => {
  let op = ops.get(name);
  if (op === undefined) {
    try {
      op = Op.resolve(name);
    } catch (e) {
      throw new Error(e.payload ?? String(e));
    }
    ops.set(name, op);
  }
  return op;
};
class AsFloat { constructor(v) { this.v = v; } }
class AsDtype { constructor(d) { this.d = d; } }
const argOf = (v) => {
  if (v === null || v === undefined) return { tag: "none" };
  if (v instanceof Tensor) return { tag: "tensor", val: v };
  if (v instanceof AsFloat) return { tag: "float", val: v.v };
  if (v instanceof AsDtype) return { tag: "dtype", val: v.d };
  if (typeof v === "boolean") return { tag: "boolean", val: v };
  if (typeof v === "bigint") return { tag: "int", val: v };
  if (typeof v === "number") return Number.isInteger(v) ? { tag: "int", val: BigInt(v) } : { tag: "float", val: v };
  if (typeof v === "string") return { tag: "str", val: v };
  if (Array.isArray(v)) {
    if (v.some((x) => x === null || x === undefined || x instanceof Tensor)) {
      return { tag: "tensors", val: v.map((x) => (x === null ? undefined : x)) };
    }
    if (v.length > 0 && v.every((x) => typeof x === "boolean")) return { tag: "bools", val: v };
    if (v.every((x) => Number.isInteger(x))) return { tag: "ints", val: big(v) };
    return { tag: "floats", val: Float64Array.from(v) };
  }
  throw new TypeError(`an operator argument cannot be ${typeof v}`);
};
export const aten = {
  float: (v) => new AsFloat(v),
  dtype: (d) => new AsDtype(d),
  // Positional arguments; a last plain object holds named ones ({ dtype: aten.dtype("float32") }).
  call(name, ...args) {
    const last = args[args.length - 1];
    const named = last !== null && typeof last === "object" && last.constructor === Object ? args.pop() : {};
    let out;
    try {
      out = resolve(name).call(args.map(argOf), Object.entries(named).map(([k, v]) => [k, argOf(v)]));
    } catch (e) {
      throw new Error(e.payload ?? String(e));
    }
    const values = out.map((v) => track(v.val));
    return values.length === 1 ? values[0] : values;
  },
  noGrad(f) {
    const prev = setGradEnabled(false);
    try {
      return f();
    } finally {
      setGradEnabled(prev);
    }
  },
};

// torch.nn layers on the ATen operators: parameters drawn as torch.nn's reset_parameters
// draws them (the same arithmetic as the Rust SDK's), registered with the host by path.
const join = (path, name) => (path ? `${path}.${name}` : name);
const uniform = (shape, bound) => {
  const t = aten.call("aten::empty.memory_format", shape, { dtype: aten.dtype("float32") });
  aten.noGrad(() => aten.call("aten::uniform_", t, aten.float(-bound), aten.float(bound)));
  return t;
};
const register = (path, t) => {
  try {
    return registerParameter(path, t);
  } catch (e) {
    throw new Error(`register_parameter \`${path}\`: ${e.payload ?? e}`);
  }
};
class SdkLinear {
  constructor(path, inF, outF, bias) {
    // init.kaiming_uniform_(w, a=math.sqrt(5)), then the bias from ±1/√in.
    const a = Math.sqrt(5);
    const gain = Math.sqrt(2.0 / (1 + a * a));
    this.weight = register(join(path, "weight"), uniform([outF, inF], Math.sqrt(3.0) * (gain / Math.sqrt(inF))));
    this.bias = bias ? register(join(path, "bias"), uniform([outF], inF > 0 ? 1 / Math.sqrt(inF) : 0)) : null;
    registerModule(path, "Linear");
  }
  forward(x) {
    return aten.call("aten::linear", x, this.weight, this.bias);
  }
}
class SdkDropout {
  constructor(p) {
    if (!(p >= 0 && p <= 1)) raiseOp("dropout", `probability must be in [0, 1], got ${p}`);
    this.p = p;
  }
  forward(x) {
    return aten.call("aten::dropout", x, aten.float(this.p), training());
  }
}
