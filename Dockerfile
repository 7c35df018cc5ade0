# Multi-stage: a static binary on distroless, running as non-root. (Not built in this repo's CI: no Docker
# engine there.)
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/switchboard-gw/switchboard/cmd/switchboard/app.Version=${VERSION}" \
    -o /out/switchboard ./cmd/switchboard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchboard /usr/local/bin/switchboard
# The embedded store and the span spill default to ./data: keep them in the nonroot user's home (mount a volume
# there to keep them across restarts).
WORKDIR /home/nonroot
# Listen on all interfaces inside the container; the default config binds loopback only.
ENV SWITCHBOARD_SERVER_LISTEN=0.0.0.0:8080
EXPOSE 8080
USER nonroot:nonroot
# Orchestrators probe GET /healthz (liveness) and /readyz (readiness) on port 8080.
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve", "--config", "/etc/switchboard/config.yaml"]
