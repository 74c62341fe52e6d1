# syntax=docker/dockerfile:1
# Build: docker build -t graph-grpc-gateway:0.1.0 .
# The Helm chart's defaults match this image: non-root 65532, ports 50051
# (gRPC) and 8080 (admin), entrypoint the binary, read-only root filesystem.

FROM rust:1-bookworm AS build
WORKDIR /src
# The proto is compiled with protox in build.rs: no protoc needed.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin graph-grpc-gateway \
 && install -D -m 0755 target/release/graph-grpc-gateway /out/graph-grpc-gateway

# glibc, CA certificates and a nonroot user (65532), nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/graph-grpc-gateway /usr/local/bin/graph-grpc-gateway
USER 65532:65532
EXPOSE 50051 8080
ENV GATEWAY_GRPC_ADDR=0.0.0.0:50051 \
    GATEWAY_ADMIN_ADDR=0.0.0.0:8080
ENTRYPOINT ["/usr/local/bin/graph-grpc-gateway"]
CMD ["serve"]
