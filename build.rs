//! Links libtorch so the binary runs without `LD_LIBRARY_PATH`: an rpath to the
//! libtorch library folder that torch-sys found (`DEP_TCH_LIBTORCH_LIB`), and
//! `libtorch_cuda` kept linked (the default `--as-needed` would drop it) so CUDA is
//! usable on machines that have a GPU.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
