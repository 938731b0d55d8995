/* SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0) */
/*
 * proc.bpf.c: process life cycle, for discovery and the process-tree filter.
 *
 * Hooks:
 *  - tp_btf/sched_process_exec: report the new executable (dev, inode) once
 *    per file, so user space inspects executables that embed a TLS library.
 *  - tracepoint syscalls sys_enter_mmap / sys_exit_mmap: report each file
 *    newly mapped executable (shared libraries, also dlopen'ed ones) once per
 *    (dev, inode); reported at exit so the mapping is visible in
 *    /proc/PID/maps when user space looks.
 *  - tp_btf/sched_process_fork: children of a --tree process join the filter.
 *
 * With a process filter (--pid/--comm/--tree) user space attaches uprobes to
 * the selected processes only (per-process uprobe.multi links), so it must
 * hear of every one of them, not of every new file: then every exec is
 * reported (user space decides whether the new image is selected, and
 * releases the links of one that is not), every executable mapping of a
 * selected process, and every fork whose child is selected (as an EXEC
 * record of the child, with its executable). Other processes' mappings are
 * not reported at all.
 *  - tp_btf/sched_process_exit: forget per-thread state; tell user space a
 *    process ended.
 *
 * Fallback: everything here uses tracepoints only (no kprobes needed).
 */

/* Files already reported (or inspected by user space at start). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weft_file_key);
	__type(value, __u8);
} seen_files SEC(".maps");

/* Thread id -> file being mapped executable, between mmap enter and exit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct weft_file_key);
} mmap_pending SEC(".maps");

/* Defined in tls.bpf.c: per-thread state of a TLS call in progress. */
static __always_inline void forget_thread(__u64 pid_tgid);

static __always_inline bool file_key(struct file *f, struct weft_file_key *key)
{
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	if (!inode)
		return false;
	key->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key->ino = BPF_CORE_READ(inode, i_ino);
	return true;
}

/* Per-process attachment: see the top of this file. */
static __always_inline bool targeted(void)
{
	return filter_pids_on || filter_comms_on;
}

static __always_inline void report_file(__u32 type, __u32 pid, struct weft_file_key *key)
{
	struct weft_file_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		/* Not marked seen: the next mapping of the file retries. */
		stat_add(WEFT_STAT_RING_FULL_OTHER, 1);
		return;
	}
	__u8 one = 1;
	bpf_map_update_elem(&seen_files, key, &one, BPF_ANY);
	r->type = type;
	r->pid = pid;
	r->dev = key->dev;
	r->ino = key->ino;
	/* Discovery races the new file's first TLS calls: wake the reader now. */
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(proc_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	FLOOR();
	/* A selected process starts: the syscall programs work from now on,
	 * before user space has seen this record. */
	if (targeted() && selected(p->tgid))
		sel_live = 1;
	struct weft_file_key key = {};
	if (!file_key(bprm->file, &key))
		return 0;
	if (!targeted() && bpf_map_lookup_elem(&seen_files, &key))
		return 0;
	report_file(WEFT_REC_EXEC, p->tgid, &key);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_mmap")
int mmap_enter(struct trace_event_raw_sys_enter *ctx)
{
	FLOOR();
	if (!(ctx->args[2] & PROT_EXEC))
		return 0;
	int fd = (int)ctx->args[4];
	if (fd < 0)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if (targeted() && !selected(id >> 32))
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
	if ((unsigned int)fd >= max)
		return 0;
	struct file *f = NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	struct weft_file_key key = {};
	if (!file_key(f, &key))
		return 0;
	if (!targeted() && bpf_map_lookup_elem(&seen_files, &key))
		return 0;
	bpf_map_update_elem(&mmap_pending, &id, &key, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int mmap_exit(struct trace_event_raw_sys_exit *ctx)
{
	FLOOR();
	__u64 id = bpf_get_current_pid_tgid();
	struct weft_file_key *key = bpf_map_lookup_elem(&mmap_pending, &id);
	if (!key)
		return 0;
	struct weft_file_key k = *key;
	bpf_map_delete_elem(&mmap_pending, &id);
	/* A failed mmap maps nothing; a racing thread may have reported it. */
	if (ctx->ret < 0 && ctx->ret > -4096)
		return 0;
	if (!targeted() && bpf_map_lookup_elem(&seen_files, &k))
		return 0;
	report_file(WEFT_REC_MMAP, id >> 32, &k);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(proc_fork, struct task_struct *parent, struct task_struct *child)
{
	FLOOR();
	if (!targeted())
		return 0;
	__u32 ptgid = parent->tgid;
	__u32 ctgid = child->tgid;
	if (ctgid == ptgid)
		return 0; /* a new thread, not a new process */
	bool child_selected = false;
	__u8 *sel = filter_pids_on ? bpf_map_lookup_elem(&filter_pids, &ptgid) : NULL;
	if (sel && *sel == WEFT_SEL_TREE) {
		__u8 tree = WEFT_SEL_TREE;
		bpf_map_update_elem(&filter_pids, &ctgid, &tree, BPF_ANY);
		child_selected = true;
	}
	/* The child inherits its parent's name (current is the parent). */
	if (!child_selected && filter_comms_on && comm_selected())
		child_selected = true;
	if (!child_selected)
		return 0;
	sel_live = 1;
	/* Its own uprobe links: the parent's do not fire in the child's copy
	 * of the address space. */
	struct weft_file_key key = {};
	struct file *exe = BPF_CORE_READ(child, mm, exe_file);
	if (exe)
		file_key(exe, &key);
	report_file(WEFT_REC_EXEC, ctgid, &key);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(proc_exit, struct task_struct *p)
{
	FLOOR();
	__u64 id = bpf_get_current_pid_tgid();
	forget_thread(id);
	bpf_map_delete_elem(&mmap_pending, &id);
	__u32 tgid = id >> 32;
	if ((__u32)id != tgid)
		return 0; /* a thread, not the whole process */
	__u8 *sel = bpf_map_lookup_elem(&filter_pids, &tgid);
	if (sel && *sel == WEFT_SEL_TREE)
		bpf_map_delete_elem(&filter_pids, &tgid);
	bpf_map_delete_elem(&woken_pids, &tgid);
	struct weft_exit_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		stat_add(WEFT_STAT_RING_FULL_OTHER, 1);
		return 0;
	}
	r->type = WEFT_REC_EXIT;
	r->pid = tgid;
	r->proc_start_ns = p->start_boottime;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}
