# syntax=docker/dockerfile:1
# The order application image. Build from the repository root:
#   docker build -f Dockerfile.app --build-arg VERSION=$(git describe --tags --always) -t orderapp .
# Base images are build arguments; docs/deployment.md has the command that re-pins them by digest.

ARG GO_IMAGE=golang:1.26.8-bookworm
# distroless static: no shell, no package manager, CA certificates and tzdata only; nonroot = 65532.
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# The module alone (GOWORK=off, replace ../proto): the workspace's other modules stay out of
# the build context's cache key. Module files first, so source edits keep the download layer.
COPY proto/go.mod proto/go.sum proto/
COPY orderapp/go.mod orderapp/go.sum orderapp/
WORKDIR /src/orderapp
ENV GOWORK=off CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY proto/ /src/proto/
COPY orderapp/ /src/orderapp/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -tags grpcnotrace \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/orderapp ./cmd/orderapp

FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="orderapp" \
      org.opencontainers.image.description="Order API reading its database credentials from the secret-proxy sidecar" \
      org.opencontainers.image.source="https://github.com/secretproxy/secretproxy" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/orderapp /orderapp
# Numeric, so Kubernetes can verify runAsNonRoot without an /etc/passwd lookup.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/orderapp"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
