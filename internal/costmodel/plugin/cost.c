/*
 * bespoke-cost: a QEMU TCG plugin that counts what the guest executes, for
 * bespoke bench --model (internal/costmodel). Built against QEMU's
 * qemu-plugin.h (API version 1, QEMU 7.2), which make fetches; see
 * scripts/qemu-plugin.sh.
 *
 * Counted, split into kernel (addresses from 0xffff800000000000) and user:
 *   - instructions and translation blocks executed (inline counters: a
 *     translation block ends at every branch, so blocks executed stand for
 *     branches taken);
 *   - kernel code through a model of a level-1 instruction cache: 32 KiB,
 *     8 ways, 64-byte lines, least recently used replaced (a typical x86
 *     core's L1i); each kernel block executed touches the lines it spans;
 *   - per kernel block: its address, instructions and executions, which the
 *     host maps to functions with the image's vmlinux;
 *   - the instructions executed before the first user-mode block: the boot
 *     up to the init's first instruction. The boot's first code (the
 *     decompressor, the kernel's identity-mapped start) runs at low
 *     addresses too, so a low block counts as user code for this once the
 *     kernel has run at its own addresses.
 *
 * Arguments: ctl=FIFO (the host writes "snap NAME" lines to it) and
 * out=DIR (each snapshot is written as DIR/NAME.tsv, atomically; "exit"
 * when QEMU ends). One vCPU is assumed: the inline counters are not atomic.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define KERNEL_BASE 0xffff800000000000ULL

/* The L1i model. */
#define LINE_BITS 6
#define SETS 64
#define WAYS 8

static struct {
	uint64_t kernel_insns, user_insns, kernel_tbs, user_tbs;
	uint64_t l1i_accesses, l1i_misses;
	uint64_t first_user_insns;
	int seen_user, seen_kernel;
} c;

static uint64_t tags[SETS][WAYS];
static uint64_t stamps[SETS][WAYS];
static uint64_t clock_;

/* One kernel translation block, by address and length. */
struct tb {
	uint64_t vaddr, end;
	uint64_t insns;
	uint64_t count;
	struct tb *next;
};

#define BUCKETS (1 << 16)
static struct tb *table[BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static char *ctl_path, *out_dir;

static struct tb *lookup(uint64_t vaddr, uint64_t end, uint64_t insns)
{
	uint64_t h = (vaddr ^ (vaddr >> 17) ^ (insns << 7)) & (BUCKETS - 1);
	struct tb *t;
	pthread_mutex_lock(&lock);
	for (t = table[h]; t; t = t->next) {
		if (t->vaddr == vaddr && t->end == end && t->insns == insns)
			break;
	}
	if (!t) {
		t = calloc(1, sizeof(*t));
		t->vaddr = vaddr;
		t->end = end;
		t->insns = insns;
		t->next = table[h];
		table[h] = t;
	}
	pthread_mutex_unlock(&lock);
	return t;
}

static void l1i(unsigned int vcpu, void *udata)
{
	struct tb *t = udata;
	uint64_t line, last = (t->end - 1) >> LINE_BITS;
	(void)vcpu;
	for (line = t->vaddr >> LINE_BITS; line <= last; line++) {
		uint64_t *tg = tags[line % SETS], *st = stamps[line % SETS];
		int w, victim = 0;
		c.l1i_accesses++;
		clock_++;
		for (w = 0; w < WAYS; w++) {
			if (st[w] && tg[w] == line) {
				st[w] = clock_;
				break;
			}
			if (st[w] < st[victim])
				victim = w;
		}
		if (w == WAYS) {
			c.l1i_misses++;
			tg[victim] = line;
			st[victim] = clock_;
		}
	}
}

static void first_user(unsigned int vcpu, void *udata)
{
	(void)vcpu;
	(void)udata;
	if (!c.seen_user) {
		c.seen_user = 1;
		c.first_user_insns = c.kernel_insns + c.user_insns;
	}
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	struct qemu_plugin_insn *last;
	uint64_t end;
	(void)id;
	if (n == 0)
		return;
	last = qemu_plugin_tb_get_insn(tb, n - 1);
	end = qemu_plugin_insn_vaddr(last) + qemu_plugin_insn_size(last);
	if (vaddr >= KERNEL_BASE) {
		struct tb *t = lookup(vaddr, end, n);
		qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &c.kernel_insns, n);
		qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &c.kernel_tbs, 1);
		qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &t->count, 1);
		qemu_plugin_register_vcpu_tb_exec_cb(tb, l1i, QEMU_PLUGIN_CB_NO_REGS, t);
		c.seen_kernel = 1;
		return;
	}
	if (c.seen_kernel && !c.seen_user)
		qemu_plugin_register_vcpu_tb_exec_cb(tb, first_user, QEMU_PLUGIN_CB_NO_REGS, NULL);
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &c.user_insns, n);
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &c.user_tbs, 1);
}

/* snap writes the counters and every executed kernel block to
 * out/NAME.tsv, through a temporary file renamed into place. */
static void snap(const char *name)
{
	char tmp[4096], path[4096];
	FILE *f;
	int i;
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", out_dir, name);
	snprintf(path, sizeof(path), "%s/%s.tsv", out_dir, name);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "kernel_insns\t%" PRIu64 "\n", c.kernel_insns);
	fprintf(f, "user_insns\t%" PRIu64 "\n", c.user_insns);
	fprintf(f, "kernel_tbs\t%" PRIu64 "\n", c.kernel_tbs);
	fprintf(f, "user_tbs\t%" PRIu64 "\n", c.user_tbs);
	fprintf(f, "l1i_accesses\t%" PRIu64 "\n", c.l1i_accesses);
	fprintf(f, "l1i_misses\t%" PRIu64 "\n", c.l1i_misses);
	fprintf(f, "first_user_insns\t%" PRIu64 "\n", c.first_user_insns);
	pthread_mutex_lock(&lock);
	for (i = 0; i < BUCKETS; i++) {
		struct tb *t;
		for (t = table[i]; t; t = t->next) {
			if (t->count)
				fprintf(f, "tb\t%" PRIx64 "\t%" PRIu64 "\t%" PRIu64 "\n", t->vaddr, t->insns, t->count);
		}
	}
	pthread_mutex_unlock(&lock);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static int valid_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	}
	return 1;
}

static void *control(void *arg)
{
	char line[256];
	(void)arg;
	for (;;) {
		FILE *f = fopen(ctl_path, "r");
		if (!f)
			return NULL;
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\r\n")] = 0;
			if (strncmp(line, "snap ", 5) == 0 && valid_name(line + 5))
				snap(line + 5);
		}
		fclose(f);
	}
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
	(void)id;
	(void)p;
	snap("exit");
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	pthread_t th;
	int i;
	(void)info;
	for (i = 0; i < argc; i++) {
		if (strncmp(argv[i], "ctl=", 4) == 0)
			ctl_path = strdup(argv[i] + 4);
		else if (strncmp(argv[i], "out=", 4) == 0)
			out_dir = strdup(argv[i] + 4);
		else {
			fprintf(stderr, "bespoke-cost: unknown argument %s (want ctl=FIFO and out=DIR)\n", argv[i]);
			return -1;
		}
	}
	if (!out_dir) {
		fprintf(stderr, "bespoke-cost: want out=DIR\n");
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	if (ctl_path && pthread_create(&th, NULL, control, NULL) == 0)
		pthread_detach(th);
	return 0;
}
