// Generates the KServe v2 gRPC service (server side only) from proto/grpc_predict_v2.proto.
// protoc: Debian's protobuf-compiler, which scripts/bootstrap.sh installs when missing (see
// SERVER.md for why not protox). PROTOC may point elsewhere.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/grpc_predict_v2.proto");
    tonic_prost_build::configure()
        .build_client(false)
        .compile_protos(&["proto/grpc_predict_v2.proto"], &["proto"])
        .map_err(|e| format!("compiling proto/grpc_predict_v2.proto failed ({e}); protoc comes from Debian's protobuf-compiler: run `. scripts/bootstrap.sh` or set PROTOC"))?;
    Ok(())
}
