//! Compiles the `.proto` files with `protox` (pure Rust), so building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "common.proto",
        "security.proto",
        "client.proto",
        "am.proto",
        "node.proto",
        "driver.proto",
        "logs.proto",
    ];
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    for file in files {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    Ok(())
}
