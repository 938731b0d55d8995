//! Where OpenSSL hands every session secret to its key-log code:
//! `nss_keylog_int(prefix, ssl, param1, param1_len, param2, param2_len)`,
//! a static function of `ssl/ssl_lib.c` (OpenSSL 1.1.1 and 3.x) that runs for
//! every secret whether or not the application set a key-log callback.
//! A uprobe on its entry sees the NSS key-log line's three parts in its
//! arguments: the label, the client random (or the RSA tag) and the secret.
//!
//! Debian's `libssl.so.3` has no `.symtab`, so the function is found by its
//! callers and verified before anything is attached (a uprobe at a wrong
//! offset corrupts the process):
//!
//! 1. The label strings `CLIENT_RANDOM` (TLS 1.2 master secret),
//!    `EXPORTER_SECRET` and `EARLY_EXPORTER_SECRET` (TLS 1.3) are found in
//!    the file's read-only data; every RIP-relative `lea` of one of them into
//!    `rsi` followed, within a few instructions, by a direct `call` names
//!    `ssl_log_secret(ssl, label, secret, len)`. All such calls must agree on
//!    one target, and at least two different labels must lead to it.
//! 2. `ssl_log_secret` must be exactly the argument shuffle
//!    `nss_keylog_int(label, ssl, ssl->s3.client_random, 32, secret, len)`
//!    ending in a direct `jmp`/`call`: register moves are followed one by one
//!    and at the branch `rdi` must hold the label, `rsi` the `SSL*`, `rdx`
//!    `SSL* + d`, `ecx` 32, `r8` the secret and `r9` its length.
//! 3. `ssl_log_rsa_client_key_exchange`, found by its `lea` of `"RSA"` into
//!    `rdi`, must branch to the same target (with `ecx` = 8).
//!
//! Anything else (an inlined `nss_keylog_int`, another compiler's shuffle,
//! disagreeing targets) is a refusal with the reason; with `.symtab` the
//! symbol itself is used.

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction, OpKind, Register};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

/// The synthetic symbol name weft gives the probe point.
pub const KEYLOG_SYMBOL: &str = "nss_keylog_int";

/// Files larger than this are not searched (libssl.so.3 is ~0.7 MiB).
pub const MAX_FILE: usize = 16 << 20;

const LABELS: [&[u8]; 3] = [
    b"CLIENT_RANDOM",
    b"EXPORTER_SECRET",
    b"EARLY_EXPORTER_SECRET",
];

/// Why the key-log function was not located.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("OpenSSL key-log function not located: {0}")]
pub struct KeylogError(pub String);

fn err(s: impl Into<String>) -> KeylogError {
    KeylogError(s.into())
}

/// The file offset of `nss_keylog_int` in the OpenSSL library `data`.
pub fn locate(data: &[u8]) -> Result<u64, KeylogError> {
    let obj = object::File::parse(data).map_err(|e| err(format!("not a readable ELF: {e}")))?;
    if obj.architecture() != object::Architecture::X86_64 {
        return Err(err("only x86-64 is supported"));
    }
    let text = obj
        .section_by_name(".text")
        .ok_or_else(|| err("no .text section"))?;
    let (text_off, text_len) = text.file_range().ok_or_else(|| err(".text has no bytes"))?;
    let to_file = |vaddr: u64| -> Option<u64> {
        (vaddr >= text.address() && vaddr < text.address() + text_len)
            .then(|| vaddr - text.address() + text_off)
    };
    if let Some(sym) = obj.symbols().find(|s| s.name() == Ok(KEYLOG_SYMBOL)) {
        return to_file(sym.address()).ok_or_else(|| err("symbol outside .text"));
    }
    let code = text
        .data()
        .map_err(|e| err(format!(".text unreadable: {e}")))?;

    // Addresses of the label strings (NUL-terminated) in read-only data.
    let mut labels: Vec<(u64, usize)> = Vec::new(); // (vaddr, label index)
    let mut rsa: Vec<u64> = Vec::new();
    for s in obj.sections() {
        if s.kind() != SectionKind::ReadOnlyString && s.kind() != SectionKind::ReadOnlyData {
            continue;
        }
        let Ok(bytes) = s.data() else { continue };
        for (i, l) in LABELS.iter().enumerate() {
            for at in find_all(bytes, l) {
                labels.push((s.address() + at as u64, i));
            }
        }
        for at in find_all(bytes, b"RSA") {
            rsa.push(s.address() + at as u64);
        }
    }
    if labels.is_empty() {
        return Err(err("no key-log label strings (not OpenSSL 1.1.1/3.x?)"));
    }

    let insns = decode_all(code, text.address());
    // 1. lea rsi, [label] ... call T  => T is ssl_log_secret.
    let mut log_secret: Option<u64> = None;
    let mut seen_labels = [false; 3];
    for (i, ins) in insns.iter().enumerate() {
        let Some(target) = lea_rip_target(ins, Register::RSI) else {
            continue;
        };
        let Some(&(_, li)) = labels.iter().find(|(a, _)| *a == target) else {
            continue;
        };
        let Some(call) = insns[i + 1..]
            .iter()
            .take(6)
            .find(|x| x.flow_control() == FlowControl::Call)
        else {
            continue;
        };
        if call.op0_kind() != OpKind::NearBranch64 {
            continue;
        }
        let t = call.near_branch_target();
        match log_secret {
            None => log_secret = Some(t),
            Some(prev) if prev != t => {
                return Err(err(format!(
                    "key-log labels lead to different functions ({prev:#x}, {t:#x})"
                )));
            }
            Some(_) => {}
        }
        seen_labels[li] = true;
    }
    let log_secret = log_secret.ok_or_else(|| err("no call of ssl_log_secret found"))?;
    if seen_labels.iter().filter(|s| **s).count() < 2 {
        return Err(err("fewer than two key-log labels lead to ssl_log_secret"));
    }

    // 2. ssl_log_secret is the argument shuffle into nss_keylog_int.
    let start = insns
        .iter()
        .position(|x| x.ip() == log_secret)
        .ok_or_else(|| err("ssl_log_secret is not at an instruction boundary"))?;
    let target = check_shuffle(&insns[start..])?;

    // 3. ssl_log_rsa_client_key_exchange branches there too.
    let mut rsa_ok = false;
    for (i, ins) in insns.iter().enumerate() {
        let Some(t) = lea_rip_target(ins, Register::RDI) else {
            continue;
        };
        if !rsa.contains(&t) {
            continue;
        }
        let window = &insns[i.saturating_sub(6)..(i + 4).min(insns.len())];
        let sets_ecx_8 = window.iter().any(|x| {
            x.code() == Code::Mov_r32_imm32
                && x.op0_register() == Register::ECX
                && x.immediate32() == 8
        });
        let branches = insns[i + 1..].iter().take(3).any(|x| {
            matches!(
                x.flow_control(),
                FlowControl::UnconditionalBranch | FlowControl::Call
            ) && x.op0_kind() == OpKind::NearBranch64
                && x.near_branch_target() == target
        });
        if sets_ecx_8 && branches {
            rsa_ok = true;
            break;
        }
    }
    if !rsa_ok {
        return Err(err(
            "ssl_log_rsa_client_key_exchange does not confirm the target",
        ));
    }
    if target % 16 != 0 {
        return Err(err(format!("target {target:#x} is not a function start")));
    }
    to_file(target).ok_or_else(|| err("target outside .text"))
}

fn find_all<'a>(hay: &'a [u8], s: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    hay.windows(s.len() + 1)
        .enumerate()
        .filter(move |(_, w)| &w[..s.len()] == s && w[s.len()] == 0)
        .map(|(i, _)| i)
}

fn decode_all(code: &[u8], ip: u64) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut out = Vec::with_capacity(code.len() / 4);
    let mut ins = Instruction::default();
    while d.can_decode() {
        d.decode_out(&mut ins);
        out.push(ins);
    }
    out
}

/// `lea reg, [rip + d]`: the address it loads.
fn lea_rip_target(ins: &Instruction, reg: Register) -> Option<u64> {
    (ins.code() == Code::Lea_r64_m
        && ins.op0_register() == reg
        && ins.memory_base() == Register::RIP)
        .then(|| ins.memory_displacement64())
}

/// What a register holds while following the shuffle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Unknown,
    /// The function's argument `n` (0 = rdi, 1 = rsi, 2 = rdx, 3 = rcx).
    Arg(u8),
    /// Argument `n` plus a displacement.
    ArgPlus(u8, u64),
    Imm(u64),
}

const REGS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];
const EXTRA: [Register; 3] = [Register::RAX, Register::R10, Register::R11];

fn slot(r: Register) -> Option<usize> {
    let full = r.full_register();
    REGS.iter().chain(EXTRA.iter()).position(|x| *x == full)
}

/// Follow `ssl_log_secret`'s register moves to its branch; returns the
/// branch target when the arguments are those of `nss_keylog_int`.
fn check_shuffle(insns: &[Instruction]) -> Result<u64, KeylogError> {
    let mut v = [Val::Unknown; 9];
    for (i, r) in v.iter_mut().take(4).enumerate() {
        *r = Val::Arg(i as u8);
    }
    for ins in insns.iter().take(16) {
        match ins.code() {
            Code::Endbr64 => {}
            Code::Mov_r64_rm64 | Code::Mov_rm64_r64 if ins.op1_kind() == OpKind::Register => {
                let (Some(d), Some(s)) = (slot(ins.op0_register()), slot(ins.op1_register()))
                else {
                    return Err(err("ssl_log_secret moves through an unexpected register"));
                };
                v[d] = v[s];
            }
            Code::Mov_r32_imm32 => {
                let d = slot(ins.op0_register())
                    .ok_or_else(|| err("ssl_log_secret sets an unexpected register"))?;
                v[d] = Val::Imm(u64::from(ins.immediate32()));
            }
            Code::Lea_r64_m
                if ins.memory_index() == Register::None && ins.memory_base() != Register::RIP =>
            {
                let (Some(d), Some(b)) = (slot(ins.op0_register()), slot(ins.memory_base())) else {
                    return Err(err("ssl_log_secret computes from an unexpected register"));
                };
                v[d] = match v[b] {
                    Val::Arg(n) => Val::ArgPlus(n, ins.memory_displacement64()),
                    _ => Val::Unknown,
                };
            }
            _ if matches!(
                ins.flow_control(),
                FlowControl::UnconditionalBranch | FlowControl::Call
            ) && ins.op0_kind() == OpKind::NearBranch64 =>
            {
                let want = [
                    matches!(v[0], Val::Arg(1)),
                    matches!(v[1], Val::Arg(0)),
                    matches!(v[2], Val::ArgPlus(0, d) if d > 0 && d < 0x10000),
                    v[3] == Val::Imm(32),
                    v[4] == Val::Arg(2),
                    v[5] == Val::Arg(3),
                ];
                if want.iter().all(|w| *w) {
                    return Ok(ins.near_branch_target());
                }
                return Err(err(format!(
                    "ssl_log_secret does not pass nss_keylog_int's arguments ({:?})",
                    &v[..6]
                )));
            }
            _ => {
                return Err(err(format!(
                    "ssl_log_secret is not a plain argument shuffle (at {:#x})",
                    ins.ip()
                )));
            }
        }
    }
    Err(err("ssl_log_secret has no branch within 16 instructions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asm(bytes: &[u8]) -> Vec<Instruction> {
        decode_all(bytes, 0x3a200)
    }

    #[test]
    fn debian_openssl_3_shuffle_is_accepted() {
        // libssl.so.3 3.0.x (Debian bookworm), ssl_log_secret at 0x3a200:
        // mov rax,rdi; mov r8,rdx; mov rdi,rsi; mov r9,rcx;
        // lea rdx,[rax+0x160]; mov ecx,0x20; mov rsi,rax; jmp 0x32e90
        let code = [
            0x48, 0x89, 0xf8, 0x49, 0x89, 0xd0, 0x48, 0x89, 0xf7, 0x49, 0x89, 0xc9, 0x48, 0x8d,
            0x90, 0x60, 0x01, 0x00, 0x00, 0xb9, 0x20, 0x00, 0x00, 0x00, 0x48, 0x89, 0xc6, 0xe9,
            0x70, 0x8c, 0xff, 0xff,
        ];
        assert_eq!(check_shuffle(&asm(&code)), Ok(0x32e90));
    }

    #[test]
    fn wrong_shuffles_are_refused() {
        // Same, but the length goes to r9 from rdx (swapped): refused.
        let swapped = [
            0x48, 0x89, 0xf8, 0x49, 0x89, 0xc8, 0x48, 0x89, 0xf7, 0x49, 0x89, 0xd1, 0x48, 0x8d,
            0x90, 0x60, 0x01, 0x00, 0x00, 0xb9, 0x20, 0x00, 0x00, 0x00, 0x48, 0x89, 0xc6, 0xe9,
            0x70, 0x8c, 0xff, 0xff,
        ];
        assert!(check_shuffle(&asm(&swapped)).is_err());
        // A real function body (push rbx; ...): not a shuffle.
        assert!(check_shuffle(&asm(&[0x53, 0x48, 0x89, 0xfb, 0xc3])).is_err());
    }

    #[test]
    fn system_libssl_is_located_and_verified_when_present() {
        // The development and CI machines run Debian 12's libssl3 (3.0.x,
        // no .symtab): it must be found there. Without the file, nothing to do.
        let Ok(data) = std::fs::read("/usr/lib/x86_64-linux-gnu/libssl.so.3") else {
            return;
        };
        let off = locate(&data).expect("Debian's libssl.so.3 (the machines weft is tested on)");
        assert!(off > 0 && (off as usize) < data.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(locate(b"not an elf").is_err());
        assert!(locate(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]).is_err());
    }
}
