# Multi-stage build: compile roomcast, then ship only the binary (the web client is embedded).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin roomcast

FROM debian:bookworm-slim
RUN useradd --system --no-create-home roomcast
COPY --from=build /src/target/release/roomcast /usr/local/bin/roomcast
USER roomcast
EXPOSE 8080/tcp 50000/udp
ENTRYPOINT ["/usr/local/bin/roomcast"]
