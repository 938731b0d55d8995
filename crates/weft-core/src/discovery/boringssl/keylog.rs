//! Where BoringSSL hands every session secret to its key-log code, in a
//! stripped executable (Chromium): `bssl::ssl_log_secret(const SSL *ssl,
//! const char *label, Span<const uint8_t> secret)` (`ssl/ssl_lib.cc`).
//!
//! Every TLS 1.2 master secret (`CLIENT_RANDOM`) and TLS 1.3 traffic secret
//! is passed to it, whether or not the application set a key-log callback
//! (without one it returns at once). `Span` is two words, so at entry
//! `rdi` = `SSL*`, `rsi` = the label, `rdx` = the secret, `rcx` = its length.
//! The client random is not an argument: the function reads it from
//! `ssl->s3->client_random`, and the uprobe does the same with the two
//! offsets this module takes **from the function's own code**.
//!
//! # How it is found and verified (all must hold, else no probe)
//!
//! - **Known build** (`data/boringssl_keylog.json`, keyed by build-id): the
//!   function at the recorded file offset decodes (same rules as the other
//!   BoringSSL functions: a function start, every path decodes) to exactly
//!   the recorded size and FNV-1a hash.
//! - **Unknown build** (an embedder's name): the key-log labels
//!   (`CLIENT_RANDOM`, `CLIENT_HANDSHAKE_TRAFFIC_SECRET`, ...) are found in
//!   read-only data; every `lea rsi, [rip + label]` followed within a few
//!   instructions by a direct `call`/`jmp` names the function. All such
//!   branches must agree on one target, reached from at least three different
//!   labels.
//! - **Its shape**, both ways: the first memory read is `ssl->ctx` (from
//!   `rdi`), compared at once as `ctx->keylog_callback == NULL`; `rsi`, `rdx`
//!   and `rcx` are kept before the first call (label, secret, length); and
//!   exactly one pair of loads has the form `R = [ssl + A]` then
//!   `movzx byte [R + B + i]` in a loop bounded by `cmp i, 32` (hex-encoding
//!   the 32-byte client random): `A` is `offsetof(SSL, s3)` and `B`
//!   `offsetof(SSL3_STATE, client_random)`. A known build's recorded
//!   offsets must equal the ones read from the code.
//!
//! The probe point is reported as a synthetic symbol carrying both offsets
//! (`ssl_log_secret@s3=0x30@client_random=0x30`); `weft-bpf` turns them into
//! the BPF attach cookie of that point.

use std::collections::{BTreeMap, HashSet};

use iced_x86::{Code, FlowControl, Instruction, OpKind, Register};
use serde::Deserialize;

use super::{
    Func, Image, MAX_FUNCTION, decode_function, find_references, parse_build_id, parse_hex,
};

/// The embedded table of known builds.
const DATA_JSON: &str = include_str!("../../../data/boringssl_keylog.json");

/// Labels BoringSSL passes to `ssl_log_secret`.
const LABELS: [&[u8]; 7] = [
    b"CLIENT_RANDOM",
    b"CLIENT_EARLY_TRAFFIC_SECRET",
    b"CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    b"SERVER_HANDSHAKE_TRAFFIC_SECRET",
    b"CLIENT_TRAFFIC_SECRET_0",
    b"SERVER_TRAFFIC_SECRET_0",
    b"EXPORTER_SECRET",
];

/// Offsets above this are not believed (`SSL` and `SSL3_STATE` are smaller).
const MAX_FIELD: u64 = 0x1000;

/// The located and verified probe point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeylogPoint {
    /// File offset of `ssl_log_secret`.
    pub offset: u64,
    pub size: u64,
    pub fnv1a64: u64,
    /// `offsetof(SSL, s3)`.
    pub s3: u64,
    /// `offsetof(SSL3_STATE, client_random)`.
    pub client_random: u64,
}

impl KeylogPoint {
    /// The synthetic symbol name that carries the offsets to `weft-bpf`
    /// (parsed by `weft_bpf::sensor::boring_keylog_cookie`).
    pub(super) fn symbol(&self) -> String {
        format!(
            "{}@s3={:#x}@client_random={:#x}",
            SYMBOL, self.s3, self.client_random
        )
    }
}

/// Base name of the synthetic symbol.
pub const SYMBOL: &str = "ssl_log_secret";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[allow(dead_code)] // documentation inside the data file
    about: Vec<String>,
    schema: u32,
    builds: Vec<RawBuild>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    build_id: String,
    package: String,
    offset: String,
    size: u64,
    fnv1a64: String,
    ssl_s3: String,
    s3_client_random: String,
}

/// One known build: where the function is and what it reads.
#[derive(Debug, Clone)]
struct Known {
    pub package: String,
    pub point: KeylogPoint,
}

fn parse(json: &str) -> Result<BTreeMap<Vec<u8>, Known>, String> {
    let raw: RawTable = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if raw.schema != 1 {
        return Err(format!("schema {} (this weft reads 1)", raw.schema));
    }
    let mut out = BTreeMap::new();
    for b in raw.builds {
        let id = parse_build_id(&b.build_id).ok_or("bad build_id")?;
        let h = |s: &str| parse_hex(s).ok_or_else(|| format!("bad hex {s:?}"));
        let point = KeylogPoint {
            offset: h(&b.offset)?,
            size: b.size,
            fnv1a64: h(&b.fnv1a64)?,
            s3: h(&b.ssl_s3)?,
            client_random: h(&b.s3_client_random)?,
        };
        out.insert(
            id,
            Known {
                package: b.package,
                point,
            },
        );
    }
    Ok(out)
}

fn known_builds() -> Option<&'static BTreeMap<Vec<u8>, Known>> {
    static DATA: std::sync::OnceLock<Option<BTreeMap<Vec<u8>, Known>>> = std::sync::OnceLock::new();
    DATA.get_or_init(|| match parse(DATA_JSON) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::error!("data/boringssl_keylog.json is invalid ({e}): no BoringSSL key log");
            None
        }
    })
    .as_ref()
}

/// `bssl::ssl_log_secret(const SSL *, const char *, Span<const uint8_t>)`
/// as the compiler names it. Never exported: only an unstripped build's
/// `.symtab` has it.
pub const MANGLED: &str = "_ZN4bssl14ssl_log_secretEPK6ssl_stPKcNS_4SpanIKhEE";

/// Locate and verify `ssl_log_secret` in `img` (sections read). `symbol`:
/// its file offset from the symbol table, when the file names it. The
/// error says why it was refused.
pub(super) fn locate(img: &Image<'_>, symbol: Option<u64>) -> Result<KeylogPoint, String> {
    let known = img.build_id.as_ref().and_then(|id| known_builds()?.get(id));
    match (known, symbol) {
        (Some(k), Some(at)) if k.point.offset != at => Err(format!(
            "the symbol table puts ssl_log_secret at file offset {at:#x}, the table ({}) at {:#x}",
            k.package, k.point.offset
        )),
        (Some(k), _) => locate_known(img, k),
        (None, Some(at)) => locate_at(img, at),
        (None, None) => locate_by_pattern(img),
    }
}

/// The function a symbol names, verified by its shape like any other.
fn locate_at(img: &Image<'_>, offset: u64) -> Result<KeylogPoint, String> {
    let func = decode_at_offset(img, offset).map_err(|e| format!("ssl_log_secret: {e}"))?;
    let (s3, client_random) = shape(&func)?;
    Ok(KeylogPoint {
        offset,
        size: func.size(),
        fnv1a64: func.fnv1a64,
        s3,
        client_random,
    })
}

fn decode_at_offset(img: &Image<'_>, offset: u64) -> Result<Func, String> {
    let start = img
        .vaddr_of_offset(offset)
        .ok_or_else(|| format!("offset {offset:#x} is not in the file"))?;
    decode_vaddr(img, start)
}

fn decode_vaddr(img: &Image<'_>, start: u64) -> Result<Func, String> {
    let win = img.window(
        start,
        start.saturating_sub(16),
        start.saturating_add(MAX_FUNCTION),
    )?;
    decode_function(&win, start, img.eh.as_ref())
}

fn locate_known(img: &Image<'_>, k: &Known) -> Result<KeylogPoint, String> {
    let want = k.point;
    let func = decode_at_offset(img, want.offset).map_err(|e| format!("ssl_log_secret: {e}"))?;
    if func.size() != want.size || func.fnv1a64 != want.fnv1a64 {
        return Err(format!(
            "ssl_log_secret at file offset {:#x}: {} bytes with FNV-1a {:#x}, the table \
             ({}) says {} bytes with {:#x}",
            want.offset,
            func.size(),
            func.fnv1a64,
            k.package,
            want.size,
            want.fnv1a64
        ));
    }
    let (s3, client_random) = shape(&func)?;
    if (s3, client_random) != (want.s3, want.client_random) {
        return Err(format!(
            "ssl_log_secret reads ssl+{s3:#x} -> +{client_random:#x}, the table says \
             +{:#x} -> +{:#x}",
            want.s3, want.client_random
        ));
    }
    Ok(want)
}

/// Addresses of the label strings (`label\0`, also as the tail of a longer
/// string) in read-only data, with the label's index.
fn find_labels(img: &Image<'_>) -> Result<Vec<(u64, usize)>, String> {
    const CHUNK: u64 = 8 << 20;
    const BACK: u64 = 64;
    let mut found = HashSet::new();
    let finders: Vec<memchr::memmem::Finder<'static>> = LABELS
        .iter()
        .map(|l| {
            let mut n = l.to_vec();
            n.push(0);
            memchr::memmem::Finder::new(&n).into_owned()
        })
        .collect();
    for &(va, size) in &img.rodata {
        if size > super::MAX_SEARCH {
            return Err(format!(
                "{size} bytes of read-only data is more than searched"
            ));
        }
        let mut pos = 0;
        while pos < size {
            let lo = pos.saturating_sub(BACK);
            let hi = (pos + CHUNK).min(size);
            let buf = img.read(va.saturating_add(lo), hi - lo)?;
            for (li, f) in finders.iter().enumerate() {
                for hit in f.find_iter(&buf) {
                    found.insert((va.saturating_add(lo) + hit as u64, li));
                }
            }
            pos = hi;
        }
    }
    let mut v: Vec<(u64, usize)> = found.into_iter().collect();
    v.sort_unstable();
    Ok(v)
}

fn locate_by_pattern(img: &Image<'_>) -> Result<KeylogPoint, String> {
    let labels = find_labels(img)?;
    if labels.is_empty() {
        return Err("no key-log label strings in read-only data".into());
    }
    let addrs: Vec<u64> = labels.iter().map(|l| l.0).collect();
    let refs = find_references(img, &addrs)?;
    let mut target: Option<u64> = None;
    let mut seen = HashSet::new();
    for at in refs {
        let Ok(win) = img.window(at, at, at.saturating_add(96)) else {
            continue;
        };
        let Some(first) = super::decode_at(&win, at) else {
            continue;
        };
        // Only `lea rsi, [rip + label]`: the label is the second argument.
        if first.code() != Code::Lea_r64_m || first.op0_register() != Register::RSI {
            continue;
        }
        let label_addr = first.memory_displacement64();
        let Some(&(_, li)) = labels.iter().find(|(a, _)| *a == label_addr) else {
            continue;
        };
        let mut ip = first.next_ip();
        let mut branch = None;
        for _ in 0..10 {
            let Some(ins) = super::decode_at(&win, ip) else {
                break;
            };
            match ins.flow_control() {
                FlowControl::Call | FlowControl::UnconditionalBranch
                    if ins.op0_kind() == OpKind::NearBranch64 =>
                {
                    branch = Some(ins.near_branch_target());
                    break;
                }
                FlowControl::Next => ip = ins.next_ip(),
                _ => break,
            }
        }
        let Some(t) = branch else { continue };
        match target {
            None => target = Some(t),
            Some(prev) if prev != t => {
                return Err(format!(
                    "key-log labels lead to different functions ({prev:#x}, {t:#x})"
                ));
            }
            Some(_) => {}
        }
        seen.insert(li);
    }
    let t = target.ok_or("no call with a key-log label as its second argument")?;
    if seen.len() < 3 {
        return Err(format!(
            "only {} different key-log labels lead to {t:#x} (3 needed)",
            seen.len()
        ));
    }
    let func = decode_vaddr(img, t).map_err(|e| format!("ssl_log_secret: {e}"))?;
    let (s3, client_random) = shape(&func)?;
    let offset = img
        .file_offset(t)
        .ok_or_else(|| format!("{t:#x} is not in the file"))?;
    Ok(KeylogPoint {
        offset,
        size: func.size(),
        fnv1a64: func.fnv1a64,
        s3,
        client_random,
    })
}

fn is_reg_move(ins: &Instruction) -> bool {
    matches!(ins.code(), Code::Mov_r64_rm64 | Code::Mov_rm64_r64)
        && ins.op0_kind() == OpKind::Register
        && ins.op1_kind() == OpKind::Register
}

/// A memory operand that is not the stack or thread-local storage.
fn reads_heap(ins: &Instruction) -> bool {
    (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory)
        && !matches!(
            ins.memory_base(),
            Register::RSP | Register::RBP | Register::RIP
        )
        && ins.segment_prefix() != Register::FS
        && ins.code() != Code::Lea_r64_m
}

/// The other loop form (GCC, and clang with the loop unrolled): after
/// `R = [ssl + A]` (at `insns[n]`), a pointer `P = lea [R + B]` and an end
/// `R + B + 32` (`lea E, [R + B + 32]` or `add R, B + 32`), byte loads
/// `movzx [P + d]`, `add P, k` and `cmp P, E`. Returns `B`.
fn pointer_loop(insns: &[&Instruction], n: usize, r: Register) -> Option<u64> {
    let window: Vec<&Instruction> = insns.iter().skip(n + 1).take(64).copied().collect();
    let is_reg_pair = |c: &Instruction, x: Register, y: Register| {
        matches!(c.code(), Code::Cmp_r64_rm64 | Code::Cmp_rm64_r64)
            && c.op0_kind() == OpKind::Register
            && c.op1_kind() == OpKind::Register
            && ((c.op0_register() == x && c.op1_register() == y)
                || (c.op0_register() == y && c.op1_register() == x))
    };
    for (i, lea) in window.iter().enumerate() {
        if lea.code() != Code::Lea_r64_m
            || lea.memory_base() != r
            || lea.memory_index() != Register::None
        {
            continue;
        }
        let (p, b) = (lea.op0_register(), lea.memory_displacement64());
        if p == r || b >= MAX_FIELD {
            continue;
        }
        let end_at = b + 32;
        let rest = &window[i + 1..];
        let end_reg = rest.iter().find_map(|e| {
            let add_r = matches!(e.code(), Code::Add_rm64_imm8 | Code::Add_rm64_imm32)
                && e.op0_kind() == OpKind::Register
                && e.op0_register() == r
                && e.immediate(1) == end_at;
            let lea_e = e.code() == Code::Lea_r64_m
                && e.memory_base() == r
                && e.memory_index() == Register::None
                && e.memory_displacement64() == end_at;
            if add_r {
                Some(r)
            } else if lea_e {
                Some(e.op0_register())
            } else {
                None
            }
        });
        let Some(e) = end_reg.filter(|&e| e != p) else {
            continue;
        };
        let loads = rest.iter().any(|l| {
            matches!(l.code(), Code::Movzx_r32_rm8 | Code::Movzx_r64_rm8)
                && l.op1_kind() == OpKind::Memory
                && l.memory_base() == p
                && l.memory_index() == Register::None
                && l.memory_displacement64() < 32
        });
        let steps = rest.iter().any(|a| {
            matches!(a.code(), Code::Add_rm64_imm8 | Code::Add_rm64_imm32)
                && a.op0_kind() == OpKind::Register
                && a.op0_register() == p
                && (1..=32).contains(&a.immediate(1))
        });
        let bounded = rest.iter().any(|c| is_reg_pair(c, p, e));
        if loads && steps && bounded {
            return Some(b);
        }
    }
    None
}

/// Check `ssl_log_secret`'s shape (module documentation); returns
/// `(offsetof(SSL, s3), offsetof(SSL3_STATE, client_random))`.
fn shape(func: &Func) -> Result<(u64, u64), String> {
    let insns: Vec<&Instruction> = func.insns.values().collect();
    // 1. The callback check: first heap read `R = [rdi + c]`, next
    //    `cmp qword [R + k], 0`.
    let mut heap = insns.iter().filter(|i| reads_heap(i));
    let (Some(ctx), Some(cmp)) = (heap.next(), heap.next()) else {
        return Err("ssl_log_secret reads no memory".into());
    };
    let ctx_ok = ctx.code() == Code::Mov_r64_rm64
        && ctx.memory_base() == Register::RDI
        && ctx.memory_index() == Register::None;
    let cmp_ok = matches!(cmp.code(), Code::Cmp_rm64_imm8 | Code::Cmp_rm64_imm32)
        && cmp.memory_base() == ctx.op0_register()
        && cmp.immediate(1) == 0;
    if !(ctx_ok && cmp_ok) {
        return Err(format!(
            "ssl_log_secret does not start by testing ssl->ctx->keylog_callback (at {:#x})",
            ctx.ip()
        ));
    }
    // 2. rsi, rdx, rcx kept before the first call.
    let first_call = insns
        .iter()
        .position(|i| i.flow_control() == FlowControl::Call)
        .unwrap_or(insns.len());
    for arg in [Register::RSI, Register::RDX, Register::RCX] {
        if !insns[..first_call]
            .iter()
            .any(|i| is_reg_move(i) && i.op1_register() == arg)
        {
            return Err(format!(
                "ssl_log_secret does not keep its argument {arg:?} before calling out"
            ));
        }
    }
    // 3. ssl->s3->client_random, hex-encoded in a loop of 32.
    let mut ssl_regs: HashSet<Register> = HashSet::from([Register::RDI]);
    let mut pairs: HashSet<(u64, u64)> = HashSet::new();
    for (n, ins) in insns.iter().enumerate() {
        if is_reg_move(ins) {
            if ssl_regs.contains(&ins.op1_register()) {
                ssl_regs.insert(ins.op0_register());
            } else {
                ssl_regs.remove(&ins.op0_register());
            }
            continue;
        }
        if ins.code() == Code::Mov_r64_rm64
            && ins.op1_kind() == OpKind::Memory
            && ssl_regs.contains(&ins.memory_base())
            && ins.memory_index() == Register::None
        {
            let r = ins.op0_register();
            let a = ins.memory_displacement64();
            for later in insns.iter().skip(n + 1).take(64) {
                let is_byte_load =
                    matches!(later.code(), Code::Movzx_r32_rm8 | Code::Movzx_r64_rm8)
                        && later.op1_kind() == OpKind::Memory;
                if is_byte_load
                    && later.memory_base() == r
                    && later.memory_index() != Register::None
                    && later.memory_index_scale() == 1
                {
                    let index = later.memory_index();
                    let bounded = insns.iter().any(|c| {
                        matches!(c.code(), Code::Cmp_rm64_imm8 | Code::Cmp_rm64_imm32)
                            && c.op0_kind() == OpKind::Register
                            && c.op0_register() == index
                            && c.immediate(1) == 32
                    });
                    if bounded {
                        pairs.insert((a, later.memory_displacement64()));
                    }
                }
            }
            if let Some(b) = pointer_loop(&insns, n, r) {
                pairs.insert((a, b));
            }
            if ssl_regs.contains(&r) {
                ssl_regs.remove(&r);
            }
        }
    }
    let mut pairs: Vec<(u64, u64)> = pairs.into_iter().collect();
    pairs.sort_unstable();
    match pairs.as_slice() {
        [(a, b)] if *a < MAX_FIELD && *b < MAX_FIELD => Ok((*a, *b)),
        [] => Err("ssl_log_secret: no 32-byte loop over ssl->s3->client_random found".into()),
        more => Err(format!(
            "ssl_log_secret: ambiguous client_random reads {more:x?}"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;
    use std::fs::File;

    const CHROMIUM: &str = "/usr/lib/chromium/chromium";

    fn image(file: &File) -> Image<'_> {
        let mut img = Image::open(file).unwrap().unwrap();
        img.read_sections().unwrap();
        img
    }

    #[test]
    fn data_table_parses() {
        let d = parse(DATA_JSON).unwrap();
        assert!(!d.is_empty());
        assert!(parse("{}").is_err());
        assert!(parse(&DATA_JSON.replace("\"schema\": 1", "\"schema\": 2")).is_err());
    }

    #[test]
    fn known_chromium_build_is_verified_and_agrees_with_the_pattern_search() {
        let file = File::open(CHROMIUM).unwrap_or_else(|e| {
            panic!("test fixture {CHROMIUM} is missing ({e}): install the Debian package chromium")
        });
        let img = image(&file);
        let known = known_builds()
            .unwrap()
            .get(img.build_id.as_ref().unwrap())
            .expect("the installed chromium is a known build: update data/boringssl_keylog.json");
        let by_table = locate(&img, None).unwrap();
        assert_eq!(by_table, known.point);
        let started = std::time::Instant::now();
        let by_pattern = locate_by_pattern(&img).unwrap();
        eprintln!("pattern search: {:?} {by_pattern:x?}", started.elapsed());
        assert_eq!(by_pattern, by_table);
        assert_eq!(
            by_table.symbol(),
            format!(
                "ssl_log_secret@s3={:#x}@client_random={:#x}",
                by_table.s3, by_table.client_random
            )
        );
    }

    #[test]
    fn wrong_offsets_are_refused() {
        let Ok(file) = File::open(CHROMIUM) else {
            return;
        };
        let img = image(&file);
        let Some(k) = known_builds()
            .unwrap()
            .get(img.build_id.as_ref().unwrap())
            .cloned()
        else {
            return;
        };
        // A neighbouring function (SSL_do_handshake's table entry is not this
        // function), a byte inside the function, a wrong struct offset.
        for (what, mutate) in [
            (
                "inside",
                Box::new(|p: &mut KeylogPoint| p.offset += 4) as Box<dyn Fn(&mut KeylogPoint)>,
            ),
            ("s3", Box::new(|p: &mut KeylogPoint| p.s3 += 8)),
            (
                "random",
                Box::new(|p: &mut KeylogPoint| p.client_random = 0x10),
            ),
            ("hash", Box::new(|p: &mut KeylogPoint| p.fnv1a64 ^= 1)),
        ] {
            let mut bad = k.clone();
            mutate(&mut bad.point);
            assert!(locate_known(&img, &bad).is_err(), "{what} accepted");
        }
    }

    const ANDROID_LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/android/libssl.so.0";

    /// Debian's shared BoringSSL (`android-libboringssl`, `.symtab`
    /// stripped): the known entry verifies, the label search finds the same
    /// function (compiled with a stack protector and a pointer loop over the
    /// client random, unlike Chromium's), and altered entries are refused.
    #[test]
    fn android_libboringssl_is_known_and_agrees_with_the_pattern_search() {
        let file = File::open(ANDROID_LIBSSL).unwrap_or_else(|e| {
            panic!(
                "test fixture {ANDROID_LIBSSL} is missing ({e}): install the Debian package \
                 android-libboringssl (scripts/deps.sh)"
            )
        });
        let img = image(&file);
        let known = known_builds()
            .unwrap()
            .get(img.build_id.as_ref().unwrap())
            .cloned()
            .expect("the installed android-libboringssl is a known build");
        assert_eq!(locate(&img, None).unwrap(), known.point);
        assert_eq!(locate_by_pattern(&img).unwrap(), known.point);
        // What a symbol table would give goes through the same checks.
        assert_eq!(locate_at(&img, known.point.offset).unwrap(), known.point);
        assert!(locate_at(&img, known.point.offset + 4).is_err());
        assert!(locate(&img, Some(known.point.offset + 16)).is_err());
        assert_eq!((known.point.s3, known.point.client_random), (0x30, 0x30));
        for (what, mutate) in [
            (
                "inside",
                Box::new(|p: &mut KeylogPoint| p.offset += 4) as Box<dyn Fn(&mut KeylogPoint)>,
            ),
            ("s3", Box::new(|p: &mut KeylogPoint| p.s3 += 8)),
            ("hash", Box::new(|p: &mut KeylogPoint| p.fnv1a64 ^= 1)),
        ] {
            let mut bad = known.clone();
            mutate(&mut bad.point);
            assert!(locate_known(&img, &bad).is_err(), "{what} accepted");
        }
    }

    /// Print the data-file entry for the installed Chromium:
    /// `cargo test -p weft-core print_chromium_keylog_entry -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn print_chromium_keylog_entry() {
        let file = File::open(CHROMIUM).unwrap();
        let img = image(&file);
        let p = locate_by_pattern(&img).unwrap();
        println!(
            "{{\"build_id\": \"{}\", \"package\": \"...\", \"offset\": \"{:#x}\", \"size\": {}, \
             \"fnv1a64\": \"{:#x}\", \"ssl_s3\": \"{:#x}\", \"s3_client_random\": \"{:#x}\"}}",
            super::super::hex(img.build_id.as_ref().unwrap()),
            p.offset,
            p.size,
            p.fnv1a64,
            p.s3,
            p.client_random
        );
    }
}
