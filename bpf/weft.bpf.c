/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * weft.bpf.c: the one BPF object weft loads. Each concern lives in its own
 * file, read end to end; they are compiled together so they share maps
 * without pinning (docs/adr/0002-one-bpf-object.md).
 */
#include "common.bpf.h"
#include "sock.bpf.c"
#include "conn.bpf.c"
#include "tls.bpf.c"
#include "plain.bpf.c"
#include "go.bpf.c"
#include "proc.bpf.c"
#include "tc.bpf.c"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
