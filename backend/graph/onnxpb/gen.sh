#!/bin/sh
# Regenerates onnx.pb.go, the Go types of the ONNX protobuf schema.
#
#   sh gen.sh            regenerate onnx.pb.go from onnx.fdset.txtpb
#   sh gen.sh --extract  first re-extract onnx.fdset.txtpb from npm onnx-buf
#
# Needs: protoc (Debian: apt-get install protobuf-compiler, 3.21.12 was used)
# and protoc-gen-go v1.36.12 on PATH
# (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12).
#
# The schema is ONNX 1.20 (IR version 13). Its only packaged form reachable
# from here is the FileDescriptorProto that npm onnx-buf@1.20.0-1 embeds
# (base64) in dist/onnx_pb.js; --extract turns it into protobuf text format
# (onnx.fdset.txtpb, a FileDescriptorSet), which is what we keep and review.
# Debian's libonnx-dev only has the 1.12 schema, which lacks fields that
# newer exporters write (NodeProto.metadata_props and others).
set -eu
cd "$(dirname "$0")"
descriptor_proto=/usr/include/google/protobuf/descriptor.proto
[ -f "$descriptor_proto" ] || { echo "gen.sh: $descriptor_proto missing: apt-get install protobuf-compiler" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "${1:-}" = "--extract" ]; then
	(cd "$tmp" && npm pack --silent onnx-buf@1.20.0-1 >/dev/null && tar xzf onnx-buf-1.20.0-1.tgz)
	b64=$(grep -o 'fileDesc("[^"]*"' "$tmp/package/dist/onnx_pb.js" | sed 's/^fileDesc("//; s/"$//')
	while [ $(( ${#b64} % 4 )) -ne 0 ]; do b64="$b64="; done
	printf '%s' "$b64" | base64 -d >"$tmp/onnx.fdp"
	{
		echo "# ONNX 1.20 schema (onnx.proto, IR version 13) as a protobuf text-format"
		echo "# FileDescriptorSet, extracted by gen.sh --extract from npm onnx-buf@1.20.0-1."
		echo "# ONNX is Apache-2.0 (Copyright (c) ONNX Project Contributors)."
		echo "file {"
		protoc -I /usr/include --decode=google.protobuf.FileDescriptorProto google/protobuf/descriptor.proto <"$tmp/onnx.fdp" | sed 's/^/  /'
		echo "}"
	} >onnx.fdset.txtpb
fi

grep -v '^#' onnx.fdset.txtpb |
	protoc -I /usr/include --encode=google.protobuf.FileDescriptorSet google/protobuf/descriptor.proto >"$tmp/onnx.fds"
protoc --descriptor_set_in="$tmp/onnx.fds" --go_out=. --go_opt=paths=source_relative \
	--go_opt=Monnx.proto=reword/backend/graph/onnxpb onnx.proto
gofmt -l onnx.pb.go
