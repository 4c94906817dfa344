//! Links the `lthost` binary against the project venv's libtorch so that it runs without
//! LD_LIBRARY_PATH: an rpath to torch's `lib/` (or $LIBTORCH/lib). `libtorch_cuda` is not
//! linked (loading it and the CUDA libraries costs ~0.25 s per start): its path is compiled
//! in, and lthost preloads it when a run may use CUDA (connectors/cuda_loader.rs).
//! Also compiles `csrc/torch_ext.cpp` (deterministic algorithms, inference mode, generators)
//! `csrc/budget_alloc.cpp` (the budgeted CPU allocator), `csrc/aten_dispatch.cpp` (any ATen
//! operator by name, through the dispatcher) and `csrc/autocast.cpp` (torch.autocast's
//! switches, the default dtype) and `csrc/distributed.cpp` (c10d: TCPStore, ProcessGroupGloo,
//! collectives, DistributedDataParallel's Reducer), `csrc/sync_batch_norm.cpp` (SyncBatchNorm as
//! the operator `lthost::sync_batch_norm`). `csrc/nccl_backend.cpp` (ProcessGroupNCCL)
//! becomes a shared object of its own, embedded in the binary (distributed/nccl.rs).

use std::path::PathBuf;
use std::process::Command;

struct Torch {
    lib: PathBuf,
    include: PathBuf,
    cxx11_abi: bool,
}

fn locate() -> Option<Torch> {
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let root = PathBuf::from(dir);
        let abi = std::env::var("LIBTORCH_CXX11_ABI").map(|v| v != "0").unwrap_or(true);
        return Some(Torch { lib: root.join("lib"), include: root.join("include"), cxx11_abi: abi });
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import torch, os, sys; d = os.path.dirname(torch.__file__); print(os.path.join(d, 'lib')); print(os.path.join(d, 'include')); print(int(torch._C._GLIBCXX_USE_CXX11_ABI)); print(os.path.dirname(sys.executable))";
    let out = Command::new(python).args(["-c", script]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut lines = text.lines();
    let lib = PathBuf::from(lines.next()?.trim());
    let include = PathBuf::from(lines.next()?.trim());
    let cxx11_abi = lines.next()?.trim() == "1";
    // The venv's scripts (componentize-py, for `lthost build`).
    if let Some(bin) = lines.next() {
        println!("cargo:rustc-env=LTHOST_PYTHON_BIN={}", bin.trim());
    }
    Some(Torch { lib, include, cxx11_abi })
}

/// The files under `dir` (recursively) whose extension is one of `exts`.
fn sources(dir: &std::path::Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "__pycache__") {
                sources(&p, exts, out);
            }
        } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| exts.contains(&x)) {
            out.push(p);
        }
    }
}

/// `$OUT_DIR/<file>`: `pub const FILES: &[(&str, &[u8])]`, the files of `dirs` (relative to
/// the repository, less `strip` where given) whose extension is one of `exts`.
fn embed(file: &str, dirs: &[&str], exts: &[&str], strip: Option<&str>) {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("..");
    let mut files = Vec::new();
    for dir in dirs {
        println!("cargo:rerun-if-changed=../{dir}");
        sources(&root.join(dir), exts, &mut files);
    }
    files.sort();
    let mut out = String::from("pub const FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let mut rel = f.strip_prefix(&root).unwrap_or(f).to_string_lossy().into_owned();
        if let Some(s) = strip {
            rel = rel.replace(s, "");
        }
        let abs = f.canonicalize().unwrap_or_else(|_| f.clone());
        out += &format!("    ({rel:?}, include_bytes!({:?})),\n", abs.to_string_lossy());
    }
    out += "];\n";
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join(file);
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=writing {}: {e}", dest.display());
    }
}

fn main() {
    // The Python SDK's packages and the WIT package, for `lthost build`
    // (host/src/lightning_build.rs) to compile a Lightning file without a checkout.
    embed(
        "python_sdk.rs",
        &[
            "sdk/python/torch",
            "sdk/python/torchmetrics",
            "sdk/python/lightning",
            "sdk/python/pytorch_lightning",
            "sdk/python/lthost",
            "wit",
        ],
        &["py", "wit"],
        Some("sdk/python/"),
    );
    // The Rust SDK's sources, the C headers and the JS SDK, for `lthost init` to write into a
    // new project (host/src/scaffold.rs), which then needs no checkout either.
    embed("language_sdks.rs", &["sdk/src", "sdk/c", "sdk/js"], &["rs", "h", "js"], None);
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=PYTHON");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-changed=csrc/torch_ext.cpp");
    println!("cargo:rerun-if-changed=csrc/budget_alloc.cpp");
    println!("cargo:rerun-if-changed=csrc/aten_dispatch.cpp");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/distributed.cpp");
    println!("cargo:rerun-if-changed=csrc/gloo_decl");
    println!("cargo:rerun-if-changed=csrc/nccl_backend.cpp");
    println!("cargo:rerun-if-changed=csrc/sync_batch_norm.cpp");
    let Some(torch) = locate() else {
        println!("cargo:warning=could not locate torch; set LIBTORCH or build with the project venv (make host)");
        write_nccl_shim(Err("torch was not found at build time".into()));
        return;
    };
    cc::Build::new()
        .cpp(true)
        .file("csrc/torch_ext.cpp")
        .file("csrc/budget_alloc.cpp")
        .file("csrc/aten_dispatch.cpp")
        .file("csrc/autocast.cpp")
        .file("csrc/distributed.cpp")
        .file("csrc/sync_batch_norm.cpp")
        .include(&torch.include)
        // Gloo's headers as torch's c10d headers need them (declarations; see the file).
        .include("csrc/gloo_decl")
        .include(torch.include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={}", u8::from(torch.cxx11_abi)))
        // As torch's release build: its headers' inline dispatcher code then leaves out the
        // debug-only dispatch tracing (a few dozen instructions per operator call).
        .define("NDEBUG", None)
        .warnings(false)
        .compile("lthost_torch_ext");
    println!("cargo:rustc-link-search=native={}", torch.lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", torch.lib.display());
    // Not linked (see connectors/cuda_loader.rs): lthost preloads it when a run may use CUDA.
    let cuda = torch.lib.join("libtorch_cuda.so");
    if cuda.exists() {
        println!("cargo:rustc-env=LTHOST_TORCH_CUDA_LIB={}", cuda.display());
    }
    nccl_shim(&torch, cuda.exists());
}

/// `$OUT_DIR/nccl_shim.rs`: `pub const SHIM: Option<&[u8]>`, csrc/nccl_backend.cpp compiled
/// into a shared object against libtorch_cuda, or None where it cannot be (`WHY` says why): a
/// CPU-only libtorch, no CUDA and NCCL headers (the wheels nvidia-cuda-runtime, -crt, -cccl and
/// nvidia-nccl put them under site-packages/nvidia; requirements.txt installs them), or a
/// compiler error (its last lines in the warning and in `WHY`).
fn nccl_shim(torch: &Torch, has_cuda: bool) {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let so = out.join("liblthost_nccl.so");
    let nvidia = torch.include.join("../../nvidia");
    let cuda_inc = nvidia.join("cu13/include");
    let nccl_inc = nvidia.join("nccl/include");
    // Headers installed or removed later rebuild the shim (only paths that exist: a missing
    // one would rerun this script on every build).
    for dir in [&cuda_inc, &nccl_inc] {
        if dir.exists() {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
    }
    let have_headers = cuda_inc.join("crt/host_config.h").exists()
        && cuda_inc.join("nv/target").exists()
        && nccl_inc.join("nccl.h").exists();
    if !has_cuda {
        return write_nccl_shim(Err("this libtorch has no CUDA (libtorch_cuda.so)".into()));
    }
    if !have_headers {
        let why = format!("no CUDA/NCCL headers under {} at build time", nvidia.display());
        println!("cargo:warning={why}: DDP on CUDA (NCCL) is not available in this build");
        return write_nccl_shim(Err(why));
    }
    let compiler = cc::Build::new().cpp(true).get_compiler();
    let output = compiler
        .to_command()
        .args(["-std=c++17", "-shared", "-fPIC", "-O2", "-DNDEBUG", "-w"])
        .arg(format!("-D_GLIBCXX_USE_CXX11_ABI={}", u8::from(torch.cxx11_abi)))
        .arg("-I")
        .arg(&torch.include)
        .arg("-I")
        .arg(torch.include.join("torch/csrc/api/include"))
        .arg("-I")
        .arg(&cuda_inc)
        .arg("-I")
        .arg(&nccl_inc)
        .arg("csrc/nccl_backend.cpp")
        .arg("-L")
        .arg(&torch.lib)
        .args(["-ltorch_cuda", "-ltorch_cpu", "-lc10_cuda", "-lc10", "-Wl,--no-undefined"])
        .arg(format!("-Wl,-rpath,{}", torch.lib.display()))
        .arg("-o")
        .arg(&so)
        .output();
    match output {
        Ok(o) if o.status.success() => write_nccl_shim(Ok(&so)),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = text.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            let why = format!("compiling csrc/nccl_backend.cpp failed: {}", tail.join(" | "));
            println!("cargo:warning={why}");
            write_nccl_shim(Err(why));
        }
        Err(e) => {
            let why = format!("could not run the C++ compiler for csrc/nccl_backend.cpp: {e}");
            println!("cargo:warning={why}");
            write_nccl_shim(Err(why));
        }
    }
}

/// Writes `nccl_shim.rs`: the shared object's bytes, or why there is none.
fn write_nccl_shim(so: Result<&PathBuf, String>) {
    let text = match so {
        Ok(so) => format!(
            "pub const SHIM: Option<&[u8]> = Some(include_bytes!({:?}));\npub const WHY: &str = \"\";\n",
            so.to_string_lossy()
        ),
        Err(why) => format!("pub const SHIM: Option<&[u8]> = None;\npub const WHY: &str = {why:?};\n"),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    if let Err(e) = std::fs::write(out.join("nccl_shim.rs"), text) {
        println!("cargo:warning=writing nccl_shim.rs: {e}");
    }
}
