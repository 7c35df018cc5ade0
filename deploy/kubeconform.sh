#!/usr/bin/env bash
# kubeconform.sh — validate deploy/kubernetes offline with kubeconform (strict: unknown fields are errors).
#
#   deploy/kubeconform.sh [DIR]      default DIR: deploy/kubernetes next to this script
#
# kubeconform normally downloads its JSON schemas from GitHub, which is not reachable here. Instead this script
# takes Kubernetes' own OpenAPI document (api/openapi-spec/swagger.json in the k8s.io/kubernetes module, fetched
# through the Go module proxy like any module) and turns it into kubeconform's "standalone-strict" schema layout,
# once, in a cache folder. Needs go and python3 (installed with apt-get when missing and running as root).
#
# Env: KUBECONFORM_VERSION (default v0.8.0), KUBERNETES_VERSION (default 1.36.3: the API the manifests target),
#      SCHEMA_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/kubernetes-json-schema).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:-$here/kubernetes}"
kc_version="${KUBECONFORM_VERSION:-v0.8.0}"
k8s_version="${KUBERNETES_VERSION:-1.36.3}"
cache="${SCHEMA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/kubernetes-json-schema}"
schemas="$cache/v$k8s_version-standalone-strict"

say() { echo "kubeconform.sh: $*" >&2; }
fail() { say "error: $*"; exit 1; }

command -v go >/dev/null || fail "go is required"
[[ -d "$dir" ]] || fail "$dir: no such directory"

# The pinned build in GOBIN (go-installed binaries print "development" for -v: read the version from the binary).
gobin="$(go env GOBIN)"; gobin="${gobin:-$(go env GOPATH)/bin}"
kubeconform="$gobin/kubeconform"
if ! go version -m "$kubeconform" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+github.com/yannh/kubeconform[[:space:]]+$kc_version[[:space:]]"; then
  say "installing kubeconform $kc_version ..."
  # Outside any module, so the project's go.mod is left alone.
  (cd / && GOFLAGS=-mod=mod go install "github.com/yannh/kubeconform/cmd/kubeconform@$kc_version")
fi

if ! command -v python3 >/dev/null; then
  [[ "$(id -u)" == 0 ]] || fail "python3 is required (apt-get install python3)"
  say "installing python3 (Debian) ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null
fi

if [[ ! -f "$schemas/.complete" ]]; then
  say "building JSON schemas for Kubernetes $k8s_version ..."
  src="$(cd / && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$k8s_version" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if d.get("Error") else print(d["Dir"])')"
  rm -rf "$schemas.tmp"; mkdir -p "$schemas.tmp"
  python3 - "$src/api/openapi-spec/swagger.json" "$schemas.tmp" <<'PY'
# Each kind's schema with every $ref inlined ("standalone") and additionalProperties: false on every object that
# lists its properties ("strict"), named the way kubeconform looks them up: <kind>[-<group>]-<version>.json.
import copy, json, os, sys

spec, out = sys.argv[1], sys.argv[2]
defs = json.load(open(spec))["definitions"]

def resolve(node, stack):
    if isinstance(node, list):
        return [resolve(x, stack) for x in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):    # JSONSchemaProps also has a property named $ref
        name = ref.rsplit("/", 1)[-1]
        if name in stack:       # recursive types (JSONSchemaProps) stay open below their first level
            return {}
        return resolve(copy.deepcopy(defs[name]), stack | {name})
    if node.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    new = {k: resolve(v, stack) for k, v in node.items()}
    if "properties" in new and "additionalProperties" not in new:
        new["additionalProperties"] = False
    return new

count = 0
for name, d in defs.items():
    for gvk in d.get("x-kubernetes-group-version-kind", []):
        group, version, kind = gvk["group"], gvk["version"], gvk["kind"]
        schema = resolve(copy.deepcopy(d), {name})
        api_version = f"{group}/{version}" if group else version
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [api_version]}
        props["kind"] = {"type": "string", "enum": [kind]}
        schema["$schema"] = "http://json-schema.org/schema#"
        suffix = "-" + group.split(".")[0] + "-" + version if group else "-" + version
        with open(os.path.join(out, (kind + suffix).lower() + ".json"), "w") as f:
            json.dump(schema, f)
        count += 1
if count == 0:
    sys.exit("no kinds found in " + spec)
print(f"{count} schemas", file=sys.stderr)
PY
  touch "$schemas.tmp/.complete"
  rm -rf "$schemas"; mv "$schemas.tmp" "$schemas"
fi

# kustomization.yaml is kustomize's input, not an API object: check instead that it lists exactly the manifests here.
if [[ -f "$dir/kustomization.yaml" ]]; then
  listed="$(sed -n '/^resources:/,/^[^ -]/{s/^  - //p}' "$dir/kustomization.yaml" | sort)"
  present="$(cd "$dir" && ls -1 *.yaml | grep -vx kustomization.yaml | sort)"
  [[ "$listed" == "$present" ]] || fail "kustomization.yaml resources ($(echo $listed)) differ from the files ($(echo $present))"
fi

exec "$kubeconform" -strict -summary -kubernetes-version "$k8s_version" \
  -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  -ignore-filename-pattern 'kustomization\.yaml$' "$dir"
