/*
 * The control API through the HTTP layer (http_conn, the bytes a client
 * sends): every route, Firecracker's body shapes, and a 400 with a
 * fault_message for each kind of malformed or unsupported request. The
 * effects are checked on the device and the store, not just the statuses.
 */
#include <arpa/inet.h>
#include <sys/stat.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "api/api.h"
#include "balloon/virtio_balloon.h"
#include "core/compiler.h"
#include "core/log.h"
#include "mmds/mmds.h"
#include "net/net_device.h"

struct rig {
	struct event_loop loop;
	struct net_backend *be;
	struct net_device net;
	struct mmds *mmds;
	struct api *api;
};

/* A source naming its counters as the text dump prints them: the group's
 * own prefix ("extra_") is dropped in the JSON, a space becomes '_'. */
static void visit_extra(void *opaque, const struct counter_sink *sink)
{
	int v = *(int *)opaque;

	counter_emit(sink, "extra_", "thing", (uint64_t)v);
	counter_emit(sink, "other ", "kind", (uint64_t)v + 1);
}

static int extra_value = 42;

static void rig_up(struct rig *r, bool with_mmds)
{
	struct errbuf eb = { 0 };
	struct net_config_opts no = { .mac = { 0x52, 0x54, 0, 1, 2, 3 }, .mtu = 1500 };
	struct mmds_config mc = { .version = MMDS_V1, .store_limit = 200 };

	memset(r, 0, sizeof(*r));
	CHECK_EQ(event_loop_init(&r->loop), 0);
	r->be = net_loopback_create(&r->loop, NULL, &eb);
	CHECK_EQ(net_device_init(&r->net, &no, r->be, &r->loop), 0);
	inet_pton(AF_INET, "169.254.169.254", &mc.ipv4);
	if (with_mmds)
		r->mmds = mmds_new(&mc);
	struct api_opts ao = { .ifaces = { { &r->net, "eth0", "tap7", with_mmds } }, .n_ifaces = 1,
			       .mmds = r->mmds,
			       .sources = { { "extra", visit_extra, &extra_value } },
			       .n_sources = 1, .max_body_bytes = 4096 };   /* as raw()'s */
	r->api = api_start(&r->loop, &ao, &eb);
	CHECK(r->api != NULL);
}

static void rig_down(struct rig *r)
{
	api_stop(r->api);
	net_device_destroy(&r->net);
	r->be->ops->destroy(r->be);
	if (r->mmds)
		mmds_free(r->mmds);
	event_loop_destroy(&r->loop);
}

struct reply {
	int status;
	char *head;          /* the status line and headers, NUL terminated */
	char *body;          /* NUL terminated */
	json_t *json;        /* the body parsed, when it is JSON */
};

static void reply_free(struct reply *rp)
{
	free(rp->head);
	free(rp->body);
	json_decref(rp->json);
	memset(rp, 0, sizeof(*rp));
}

/* Send raw bytes on a fresh connection; parse the first response. */
static struct reply raw(struct rig *r, const char *bytes)
{
	struct http_limits lim = { .max_header_bytes = API_MAX_HEADER_BYTES,
				   .max_body_bytes = 4096, .max_connections = 1 };
	struct http_conn *c = http_conn_new(&lim, api_http_handler, api_http_error, r->api);
	struct reply rp = { 0 };
	char *out = NULL;
	size_t len = 0;

	http_conn_feed(c, bytes, strlen(bytes), &out, &len);
	http_conn_free(c);
	out = realloc(out, len + 1);
	out[len] = '\0';
	sscanf(out, "HTTP/1.1 %d", &rp.status);
	char *b = strstr(out, "\r\n\r\n");
	rp.head = strndup(out, b ? (size_t)(b - out) : len);
	rp.body = strdup(b ? b + 4 : "");
	rp.json = json_loads(rp.body, 0, NULL);
	free(out);
	return rp;
}

static struct reply call(struct rig *r, const char *method, const char *path, const char *body)
{
	char req[8192];

	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		 method, path, body ? strlen(body) : 0, body ? body : "");
	return raw(r, req);
}

/* A 400 (or @status) whose fault_message contains @needle. */
static void expect_fault(struct rig *r, int status, const char *method, const char *path,
			 const char *body, const char *needle)
{
	struct reply rp = call(r, method, path, body);
	const char *msg = json_string_value(json_object_get(rp.json, "fault_message"));

	CHECK_EQ(rp.status, status);
	CHECK(msg && strstr(msg, needle));
	if (!msg || !strstr(msg, needle))
		fprintf(stderr, "  %s %s %s -> %d %s\n", method, path, body ? body : "", rp.status,
			rp.body);
	reply_free(&rp);
}

static int status_of(struct rig *r, const char *method, const char *path, const char *body)
{
	struct reply rp = call(r, method, path, body);
	int s = rp.status;

	if (s >= 400)
		fprintf(stderr, "  %s %s -> %d %s\n", method, path, s, rp.body);
	reply_free(&rp);
	return s;
}

static void test_instance_and_unknown_routes(void)
{
	struct rig r;

	rig_up(&r, true);
	struct reply rp = call(&r, "GET", "/", NULL);
	CHECK_EQ(rp.status, 200);
	CHECK(!strcmp(json_string_value(json_object_get(rp.json, "app_name")), "kvmini"));
	reply_free(&rp);
	expect_fault(&r, 400, "GET", "/nope", NULL, "Invalid request method and/or path: GET /nope.");
	expect_fault(&r, 400, "DELETE", "/mmds", NULL, "Invalid request method and/or path");
	expect_fault(&r, 400, "GET", "/mmds/config", NULL, "Invalid request method and/or path");
	expect_fault(&r, 400, "POST", "/actions", "{}", "Invalid request method and/or path");
	expect_fault(&r, 400, "PUT", "/network-interfaces/", "{}", "Invalid request");
	expect_fault(&r, 400, "PUT", "/network-interfaces/eth0/x", "{}", "Invalid request");
	/* A path that is not UTF-8 is still answered in JSON. */
	expect_fault(&r, 400, "GET", "/caf%e9", NULL, "GET /caf?.");
	rig_down(&r);
}

/* The VM behind PATCH /vm: kvmini run's machine has no stand-in here (the
 * real one is proven in tests/kvm), so a record of the calls. */
struct fake_vm {
	bool started, paused;
	int fail;            /* what the next pause returns, when nonzero */
	unsigned pauses, resumes;
	unsigned snapshots;  /* PUT /snapshot/create calls that reached the VM */
	bool last_diff;
	char last_mem[64];
	/* PUT /snapshot/load: the last request as the VM got it. */
	unsigned loads;
	bool loaded;         /* a VM exists: a second load gets -EEXIST */
	struct api_snapshot_load last_load;
	char load_strings[8][64];
	/* The pre-boot configuration (strings in load_strings 0..4). */
	struct api_machine_config machine;
	unsigned ifaces_added;
	struct api_net_config last_iface;
	unsigned ctrl_alt_dels;
	bool i8042_full;     /* the next SendCtrlAltDel finds the buffer full */
	/* PUT /drives before the start, PATCH /drives after it. */
	struct fake_drive {
		char id[16], path[64];
		bool root;
		struct rate_limiter_config limit;
	} drives[2];
	unsigned n_drives, drive_patches;
	/* PUT /vsock: the last configuration taken, and how many were. */
	unsigned vsock_puts;
	uint64_t vsock_cid;
	char vsock_path[64];
	/* The balloon: PUT before the start, the device's state after it
	 * (the rules are kvmini run's: run_balloon.c). */
	bool balloon, balloon_active;
	struct api_balloon_config balloon_cfg;
	struct api_balloon_stats balloon_stats;
};

static int fake_pause(void *ctx)
{
	struct fake_vm *vm = ctx;

	vm->pauses++;
	if (!vm->started)
		return -EAGAIN;
	if (vm->fail)
		return vm->fail;
	vm->paused = true;
	return 0;
}

static int fake_resume(void *ctx)
{
	struct fake_vm *vm = ctx;

	vm->resumes++;
	vm->paused = false;
	return 0;
}

static const char *fake_state(void *ctx)
{
	const struct fake_vm *vm = ctx;

	return vm->paused ? "Paused" : vm->started ? "Running" : "Not started";
}

/* A snapshot of a paused fake VM records what it was asked for. */
static int fake_snapshot(void *ctx, const struct api_snapshot_create *req, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;

	if (!vm->paused)
		return -EAGAIN;
	if (!strcmp(req->snapshot_path, "/nonexistent/state")) {
		errbuf_set(eb, "/nonexistent/state: No such file or directory");
		return -ENOENT;
	}
	vm->snapshots++;
	vm->last_diff = req->diff;
	snprintf(vm->last_mem, sizeof(vm->last_mem), "%s", req->mem_file_path);
	return 0;
}

/* Keep @src past the request (its body is freed after the call). */
static const char *keep(struct fake_vm *vm, unsigned slot, const char *src)
{
	if (!src)
		return NULL;
	snprintf(vm->load_strings[slot], sizeof(vm->load_strings[slot]), "%s", src);
	return vm->load_strings[slot];
}

static int fake_load(void *ctx, const struct api_snapshot_load *req, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;

	if (vm->loaded)
		return -EEXIST;
	if (!strcmp(req->snapshot_path, "/nonexistent/state")) {
		errbuf_set(eb, "/nonexistent/state: No such file or directory");
		return -ENOENT;
	}
	vm->loads++;
	vm->loaded = true;
	vm->last_load = *req;
	vm->last_load.snapshot_path = keep(vm, 0, req->snapshot_path);
	for (unsigned i = 0; i < req->n_mem_paths && i < 3; i++)
		vm->last_load.mem_paths[i] = keep(vm, 1 + i, req->mem_paths[i]);
	for (unsigned i = 0; i < req->n_overrides && i < 2; i++) {
		vm->last_load.overrides[i].iface_id = keep(vm, 4 + 2 * i, req->overrides[i].iface_id);
		vm->last_load.overrides[i].host_dev_name =
			keep(vm, 5 + 2 * i, req->overrides[i].host_dev_name);
	}
	return 0;
}

/* The pre-boot configuration: kept as given; after start, -EEXIST. */
static int fake_boot_source(void *ctx, const struct api_boot_source *bs, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;

	if (vm->started)
		return -EEXIST;
	if (!strcmp(bs->kernel_image_path, "/nonexistent")) {
		errbuf_set(eb, "kernel_image_path /nonexistent: No such file or directory");
		return -ENOENT;
	}
	keep(vm, 0, bs->kernel_image_path);
	keep(vm, 1, bs->boot_args);
	keep(vm, 2, bs->initrd_path);
	return 0;
}

static void fake_get_machine(void *ctx, struct api_machine_config *mc)
{
	*mc = ((struct fake_vm *)ctx)->machine;
}

static int fake_set_machine(void *ctx, const struct api_machine_config *mc, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;

	if (vm->started)
		return -EEXIST;
	if (mc->vcpu_count > 64) {
		errbuf_set(eb, "vcpu_count %llu: kvmini runs 1 to 64 vCPUs",
			   (unsigned long long)mc->vcpu_count);
		return -EINVAL;
	}
	vm->machine = *mc;
	return 0;
}

static int fake_add_iface(void *ctx, const struct api_net_config *nc, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;

	if (vm->started)
		return -EEXIST;
	vm->ifaces_added++;
	keep(vm, 3, nc->iface_id);
	keep(vm, 4, nc->host_dev_name);
	vm->last_iface = *nc;
	return 0;
}

static int fake_start(void *ctx, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;

	if (vm->started)
		return -EEXIST;
	if (!vm->load_strings[0][0]) {
		errbuf_set(eb, "no kernel to boot: PUT /boot-source first");
		return -EINVAL;
	}
	vm->started = true;
	return 0;
}

/* The pre-boot configuration as kept by the calls above. */
static void fake_get_vm_config(void *ctx, struct api_vm_config *out)
{
	struct fake_vm *vm = ctx;

	out->boot = (struct api_boot_source){
		.kernel_image_path = vm->load_strings[0][0] ? vm->load_strings[0] : NULL,
		.boot_args = vm->load_strings[1][0] ? vm->load_strings[1] : NULL,
		.initrd_path = vm->load_strings[2][0] ? vm->load_strings[2] : NULL };
	out->n_ifaces = vm->ifaces_added ? 1 : 0;
	out->ifaces[0] = vm->last_iface;
	out->ifaces[0].iface_id = vm->load_strings[3];
	out->ifaces[0].host_dev_name = vm->load_strings[4];
	out->balloon = vm->balloon;
	out->balloon_cfg = vm->balloon_cfg;
	out->vsock = vm->vsock_puts > 0;
	out->vsock_cfg = (struct api_vsock_config){ .guest_cid = vm->vsock_cid,
						    .uds_path = vm->vsock_path };
	out->n_drives = vm->n_drives;
	for (unsigned i = 0; i < vm->n_drives; i++)
		out->drives[i] = (struct api_drive_config){ .drive_id = vm->drives[i].id,
			.path_on_host = vm->drives[i].path, .is_root_device = vm->drives[i].root,
			.limit = vm->drives[i].limit };
}

static int fake_set_vsock(void *ctx, const struct api_vsock_config *vc, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;

	if (vm->started)
		return -EEXIST;
	if (vc->guest_cid < 3) {
		errbuf_set(eb, "guest_cid %llu: must be 3 to 4294967295",
			   (unsigned long long)vc->guest_cid);
		return -EINVAL;
	}
	vm->vsock_puts++;
	vm->vsock_cid = vc->guest_cid;
	snprintf(vm->vsock_path, sizeof(vm->vsock_path), "%s", vc->uds_path);
	return 0;
}

static int fake_add_drive(void *ctx, const struct api_drive_config *dc, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;

	if (vm->started)
		return -EEXIST;
	if (vm->n_drives == ARRAY_SIZE(vm->drives)) {
		errbuf_set(eb, "full");
		return -EINVAL;
	}
	struct fake_drive *d = &vm->drives[vm->n_drives++];
	snprintf(d->id, sizeof(d->id), "%s", dc->drive_id);
	snprintf(d->path, sizeof(d->path), "%s", dc->path_on_host);
	d->root = dc->is_root_device;
	d->limit = dc->limit;
	return 0;
}

/* As kvmini run's: the drive's file must open, else it keeps the old. */
static int fake_patch_drive(void *ctx, const char *id, const char *path,
			    const struct rate_limiter_config *limit, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;
	unsigned i = 0;

	if (!vm->started)
		return -EAGAIN;
	while (i < vm->n_drives && strcmp(vm->drives[i].id, id))
		i++;
	if (i == vm->n_drives)
		return -ENODEV;
	if (path && access(path, R_OK) < 0) {
		int err = errno;
		errbuf_set(eb, "%s: %s", path, strerror(err));
		return -err;
	}
	if (path)
		snprintf(vm->drives[i].path, sizeof(vm->drives[i].path), "%s", path);
	if (limit)
		vm->drives[i].limit = *limit;
	vm->drive_patches++;
	return 0;
}

static int fake_ctrl_alt_del(void *ctx)
{
	struct fake_vm *vm = ctx;

	if (!vm->started)
		return -EAGAIN;
	if (vm->i8042_full)
		return -ENOSPC;
	vm->ctrl_alt_dels++;
	return 0;
}

static int fake_set_balloon(void *ctx, const struct api_balloon_config *bc, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;

	if (vm->started)
		return -EEXIST;
	if (bc->amount_mib > vm->machine.mem_size_mib) {
		errbuf_set(eb, "Amount of pages requested is too large.");
		return -EINVAL;
	}
	vm->balloon = true;
	vm->balloon_cfg = *bc;
	return 0;
}

static int fake_get_balloon(void *ctx, struct api_balloon_config *out)
{
	struct fake_vm *vm = ctx;

	if (!vm->balloon)
		return -ENODEV;
	*out = vm->balloon_cfg;
	return 0;
}

static int fake_balloon_running(struct fake_vm *vm)
{
	return !vm->started ? -EAGAIN : !vm->balloon ? -ENODEV : 0;
}

static int fake_patch_balloon(void *ctx, uint32_t amount_mib, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;
	int r = fake_balloon_running(vm);

	if (!r && !vm->balloon_active) {
		errbuf_set(eb, "Balloon: Device not activated yet.");
		r = -EBUSY;
	}
	if (!r)
		vm->balloon_cfg.amount_mib = amount_mib;
	return r;
}

static int fake_get_balloon_stats(void *ctx, struct api_balloon_stats *out, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;
	int r = fake_balloon_running(vm);

	if (!r && !vm->balloon_cfg.stats_polling_interval_s) {
		errbuf_set(eb, "Balloon: Received stats query when stats are disabled.");
		r = -EPERM;
	}
	if (!r)
		*out = vm->balloon_stats;
	return r;
}

static int fake_patch_balloon_stats(void *ctx, uint16_t interval_s, struct errbuf *eb)
{
	struct fake_vm *vm = ctx;
	int r = fake_balloon_running(vm);
	uint16_t cur = vm->balloon_cfg.stats_polling_interval_s;

	if (!r && cur != interval_s && (!cur || !interval_s)) {
		errbuf_set(eb, "Balloon: Statistics cannot be enabled/disabled after activation.");
		r = -EPERM;
	}
	if (!r)
		vm->balloon_cfg.stats_polling_interval_s = interval_s;
	return r;
}

static const struct api_vm_ops fake_vm_ops = {
	.pause = fake_pause, .resume = fake_resume, .state = fake_state,
	.snapshot_create = fake_snapshot, .snapshot_load = fake_load,
	.set_boot_source = fake_boot_source, .get_machine_config = fake_get_machine,
	.set_machine_config = fake_set_machine, .add_iface = fake_add_iface, .start = fake_start,
	.send_ctrl_alt_del = fake_ctrl_alt_del, .get_vm_config = fake_get_vm_config,
	.add_drive = fake_add_drive, .patch_drive = fake_patch_drive,
	.set_vsock = fake_set_vsock,
	.set_balloon = fake_set_balloon, .get_balloon = fake_get_balloon,
	.patch_balloon = fake_patch_balloon, .get_balloon_stats = fake_get_balloon_stats,
	.patch_balloon_stats = fake_patch_balloon_stats,
};

static const char *state_of(struct rig *r)
{
	static char buf[32];
	struct reply rp = call(r, "GET", "/", NULL);

	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(rp.json, "state")));
	reply_free(&rp);
	return buf;
}

static void test_vm_pause_resume(void)
{
	struct fake_vm vm = { 0 };
	struct errbuf eb = { 0 };
	struct rig r;

	rig_up(&r, false);
	/* Without a VM (vhost net): refused, and the state is the device's. */
	expect_fault(&r, 400, "PATCH", "/vm", "{\"state\":\"Paused\"}", "serves a device");
	CHECK(!strcmp(state_of(&r), "Running"));
	api_stop(r.api);
	struct api_opts ao = { .ifaces = { { &r.net, "eth0", NULL, false } }, .n_ifaces = 1,
			       .vm = &fake_vm_ops, .vm_ctx = &vm };
	r.api = api_start(&r.loop, &ao, &eb);
	CHECK(r.api != NULL);

	CHECK(!strcmp(state_of(&r), "Not started"));
	expect_fault(&r, 400, "PATCH", "/vm", "{\"state\":\"Paused\"}",
		     "not supported before starting the microVM");
	vm.started = true;
	CHECK(!strcmp(state_of(&r), "Running"));
	CHECK_EQ(status_of(&r, "PATCH", "/vm", "{\"state\":\"Paused\"}"), 204);
	CHECK(!strcmp(state_of(&r), "Paused"));
	/* Again: nothing changes, still a success. */
	CHECK_EQ(status_of(&r, "PATCH", "/vm", "{\"state\":\"Paused\"}"), 204);
	CHECK_EQ(status_of(&r, "PATCH", "/vm", "{\"state\":\"Resumed\"}"), 204);
	CHECK(!strcmp(state_of(&r), "Running"));
	CHECK_EQ(vm.pauses, 3);
	CHECK_EQ(vm.resumes, 1);

	/* Bad bodies reach no VM call. */
	expect_fault(&r, 400, "PATCH", "/vm", "{\"state\":\"Stopped\"}", "not Paused or Resumed");
	expect_fault(&r, 400, "PATCH", "/vm", "{\"state\":1}", "must be a string");
	expect_fault(&r, 400, "PATCH", "/vm", "{}", "needs \"state\"");
	expect_fault(&r, 400, "PATCH", "/vm", "{\"state\":\"Paused\",\"x\":1}", "x");
	expect_fault(&r, 400, "PUT", "/vm", "{\"state\":\"Paused\"}", "Invalid request method");
	CHECK_EQ(vm.pauses, 3);
	/* A pause that did not happen says why. */
	vm.fail = -ETIMEDOUT;
	expect_fault(&r, 400, "PATCH", "/vm", "{\"state\":\"Paused\"}", "did not stop in time");
	CHECK(!strcmp(state_of(&r), "Running"));
	rig_down(&r);
}

/* SendCtrlAltDel: Firecracker's 400 before boot, 204 after; the keys
 * reach a paused VM too (they wait in the controller). */
static void test_send_ctrl_alt_del(void)
{
	static const char cad[] = "{\"action_type\":\"SendCtrlAltDel\"}";
	struct fake_vm vm = { 0 };
	struct errbuf eb = { 0 };
	struct rig r;

	rig_up(&r, false);
	expect_fault(&r, 400, "PUT", "/actions", cad, "serves a device");
	api_stop(r.api);
	struct api_opts ao = { .vm = &fake_vm_ops, .vm_ctx = &vm };
	r.api = api_start(&r.loop, &ao, &eb);
	CHECK(r.api != NULL);
	expect_fault(&r, 400, "PUT", "/actions", cad,
		     "The requested operation is not supported before starting the microVM.");
	vm.started = true;
	CHECK_EQ(status_of(&r, "PUT", "/actions", cad), 204);
	vm.paused = true;
	CHECK_EQ(status_of(&r, "PUT", "/actions", cad), 204);
	CHECK_EQ(vm.ctrl_alt_dels, 2);
	vm.i8042_full = true;
	expect_fault(&r, 400, "PUT", "/actions", cad, "i8042 internal buffer full.");
	expect_fault(&r, 400, "PUT", "/actions", "{\"action_type\":\"SendCtrlAltDelete\"}",
		     "FlushMetrics, InstanceStart and SendCtrlAltDel");
	expect_fault(&r, 400, "PUT", "/actions",
		     "{\"action_type\":\"SendCtrlAltDel\",\"payload\":1}", "payload");
	CHECK_EQ(vm.ctrl_alt_dels, 2);
	rig_down(&r);
}

/* PUT /snapshot/create's shape and refusals; /snapshot/load after boot. */
static void test_snapshot_routes(void)
{
	struct fake_vm vm = { .started = true };
	struct errbuf eb = { 0 };
	struct rig r;
	static const char full[] = "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"/s/state\","
				   "\"mem_file_path\":\"/s/mem\"}";

	rig_up(&r, false);
	expect_fault(&r, 400, "PUT", "/snapshot/create", full, "serves a device");
	api_stop(r.api);
	struct api_opts ao = { .ifaces = { { &r.net, "eth0", NULL, false } }, .n_ifaces = 1,
			       .vm = &fake_vm_ops, .vm_ctx = &vm };
	r.api = api_start(&r.loop, &ao, &eb);
	CHECK(r.api != NULL);
	expect_fault(&r, 400, "PUT", "/snapshot/create", full, "while the microVM is running");
	vm.paused = true;
	CHECK_EQ(status_of(&r, "PUT", "/snapshot/create", full), 204);
	CHECK_EQ(vm.snapshots, 1);
	CHECK(!vm.last_diff && !strcmp(vm.last_mem, "/s/mem"));
	/* snapshot_type defaults to Full; Diff is passed on. */
	CHECK_EQ(status_of(&r, "PUT", "/snapshot/create",
			   "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\"}"), 204);
	CHECK(!vm.last_diff);
	CHECK_EQ(status_of(&r, "PUT", "/snapshot/create", "{\"snapshot_type\":\"Diff\","
			   "\"snapshot_path\":\"a\",\"mem_file_path\":\"b\"}"), 204);
	CHECK(vm.last_diff);
	/* Bodies refused before the VM is asked. */
	expect_fault(&r, 400, "PUT", "/snapshot/create", "{\"snapshot_type\":\"Half\","
		     "\"snapshot_path\":\"a\",\"mem_file_path\":\"b\"}", "not Full or Diff");
	expect_fault(&r, 400, "PUT", "/snapshot/create", "{\"snapshot_path\":\"a\"}",
		     "mem_file_path");
	expect_fault(&r, 400, "PUT", "/snapshot/create", "{\"mem_file_path\":\"b\"}",
		     "snapshot_path");
	expect_fault(&r, 400, "PUT", "/snapshot/create", "{\"snapshot_path\":\"a\","
		     "\"mem_file_path\":\"b\",\"extra\":1}", "extra");
	CHECK_EQ(vm.snapshots, 3);
	/* A snapshot that failed says why. */
	expect_fault(&r, 400, "PUT", "/snapshot/create", "{\"snapshot_path\":\"/nonexistent/state\","
		     "\"mem_file_path\":\"b\"}", "No such file or directory");
	vm.loaded = true;
	expect_fault(&r, 400, "PUT", "/snapshot/load", "{\"snapshot_path\":\"/s/state\","
		     "\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"/s/mem\"}}",
		     "after the microVM has booted");
	expect_fault(&r, 400, "GET", "/snapshot/create", NULL, "Invalid request method");
	rig_down(&r);
}

/* PUT /snapshot/load into a monitor without a VM: Firecracker's shapes
 * (mem_backend or the older mem_file_path, resume_vm, track_dirty_pages
 * and its old name, network_overrides) and kvmini's extensions reach the
 * VM as given; every malformed body is refused before it. */
static void test_snapshot_load_route(void)
{
	struct fake_vm vm = { 0 };
	struct errbuf eb = { 0 };
	struct rig r;

	rig_up(&r, false);
	expect_fault(&r, 400, "PUT", "/snapshot/load", "{\"snapshot_path\":\"a\","
		     "\"mem_file_path\":\"b\"}", "serves a device");
	api_stop(r.api);
	struct api_opts ao = { .vm = &fake_vm_ops, .vm_ctx = &vm };
	r.api = api_start(&r.loop, &ao, &eb);
	CHECK(r.api != NULL);

	const char *bad[][2] = {
		{ "{\"mem_file_path\":\"b\"}", "snapshot_path" },
		{ "{\"snapshot_path\":\"a\"}", "one of mem_backend and mem_file_path" },
		{ "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"mem_backend\":"
		  "{\"backend_type\":\"File\",\"backend_path\":\"b\"}}", "only one" },
		{ "{\"snapshot_path\":\"a\",\"mem_backend\":{\"backend_type\":\"Uffd\","
		  "\"backend_path\":\"/s/uffd.sock\"}}", "maps the memory file itself" },
		{ "{\"snapshot_path\":\"a\",\"mem_backend\":{\"backend_type\":\"File\"}}",
		  "backend_path" },
		{ "{\"snapshot_path\":\"a\",\"mem_backend\":\"b\"}", "must be an object" },
		{ "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"resume_vm\":1}",
		  "true or false" },
		{ "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"network_overrides\":"
		  "{\"iface_id\":\"eth0\"}}", "array" },
		{ "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"network_overrides\":"
		  "[{\"host_dev_name\":\"tap1\"}]}", "iface_id" },
		{ "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"network_overrides\":"
		  "[{\"iface_id\":\"eth0\",\"guest_mac\":\"01:00:00:00:00:01\"}]}", "unicast" },
		{ "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"network_overrides\":"
		  "[{\"iface_id\":\"eth0\",\"mtu\":9000}]}", "mtu" },
		{ "{\"snapshot_path\":\"a\",\"mem_backend\":{\"backend_type\":\"File\","
		  "\"backend_path\":\"b\",\"diff_paths\":\"c\"}}", "diff_paths" },
		{ "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"fs_overrides\":"
		  "[{\"tag\":\"data\"}]}", "shared_dir" },
		{ "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"fs_overrides\":"
		  "[\"data\"]}", "array of objects" },
		{ "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"extra\":1}", "extra" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_fault(&r, 400, "PUT", "/snapshot/load", bad[i][0], bad[i][1]);
	CHECK_EQ(vm.loads, 0);
	expect_fault(&r, 400, "PUT", "/snapshot/load", "{\"snapshot_path\":\"/nonexistent/state\","
		     "\"mem_file_path\":\"b\"}", "No such file or directory");

	/* Firecracker's current shape, with every option. */
	CHECK_EQ(status_of(&r, "PUT", "/snapshot/load", "{\"snapshot_path\":\"/s/state\","
			   "\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"/s/full\","
			   "\"diff_paths\":[\"/s/d1\",\"/s/d2\"]},\"resume_vm\":true,"
			   "\"enable_diff_snapshots\":true,\"mmds_new_token_key\":true,"
			   "\"network_overrides\":[{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap7\"},"
			   "{\"iface_id\":\"eth1\",\"guest_mac\":\"52:54:00:00:00:07\"}],"
			   "\"fs_overrides\":[{\"tag\":\"data\",\"shared_dir\":\"/srv/c2\"}]}"), 204);
	const struct api_snapshot_load *l = &vm.last_load;
	CHECK(!strcmp(l->snapshot_path, "/s/state"));
	CHECK_EQ(l->n_mem_paths, 3);
	CHECK(!strcmp(l->mem_paths[0], "/s/full") && !strcmp(l->mem_paths[2], "/s/d2"));
	CHECK(l->resume_vm && l->track_dirty_pages && l->mmds_new_token_key);
	CHECK_EQ(l->n_overrides, 2);
	CHECK(!strcmp(l->overrides[0].iface_id, "eth0") &&
	      !strcmp(l->overrides[0].host_dev_name, "tap7") && !l->overrides[0].mac_given);
	CHECK(l->overrides[1].host_dev_name == NULL && l->overrides[1].mac_given &&
	      l->overrides[1].mac[5] == 7);
	CHECK_EQ(l->n_fs_overrides, 1);
	/* A second load: the monitor has a VM now. */
	expect_fault(&r, 400, "PUT", "/snapshot/load", "{\"snapshot_path\":\"a\","
		     "\"mem_file_path\":\"b\"}", "start a new kvmini");

	/* The older shape: mem_file_path, the VM left paused. */
	vm.loaded = false;
	CHECK_EQ(status_of(&r, "PUT", "/snapshot/load", "{\"snapshot_path\":\"x\","
			   "\"mem_file_path\":\"y\"}"), 204);
	CHECK(!strcmp(l->mem_paths[0], "y") && l->n_mem_paths == 1);
	CHECK(!l->resume_vm && !l->track_dirty_pages && !l->n_overrides);
	CHECK_EQ(vm.loads, 2);
	rig_down(&r);
}

/* Firecracker's pre-boot flow: GET /machine-config first (the Go SDK's),
 * boot source, machine size (PUT whole, PATCH in part), a new interface,
 * InstanceStart; each shape checked before the VM is asked; after the
 * start every pre-boot request gets Firecracker's refusal. */
static void test_preboot_routes(void)
{
	struct fake_vm vm = { .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
	struct errbuf eb = { 0 };
	struct rig r;

	rig_up(&r, false);
	expect_fault(&r, 400, "PUT", "/boot-source", "{\"kernel_image_path\":\"/k\"}",
		     "nothing to configure");
	api_stop(r.api);
	struct api_opts ao = { .vm = &fake_vm_ops, .vm_ctx = &vm, .vmm_version = "9.9.9" };
	r.api = api_start(&r.loop, &ao, &eb);
	CHECK(r.api != NULL);

	struct reply rp = call(&r, "GET", "/machine-config", NULL);
	CHECK_EQ(rp.status, 200);
	CHECK_EQ(json_integer_value(json_object_get(rp.json, "mem_size_mib")), 256);
	CHECK(json_is_false(json_object_get(rp.json, "smt")));
	reply_free(&rp);
	rp = call(&r, "GET", "/version", NULL);
	CHECK(!strcmp(json_string_value(json_object_get(rp.json, "firecracker_version")), "9.9.9"));
	reply_free(&rp);
	rp = call(&r, "GET", "/", NULL);
	CHECK(!strcmp(json_string_value(json_object_get(rp.json, "vmm_version")), "9.9.9"));
	reply_free(&rp);
	expect_fault(&r, 400, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}",
		     "PUT /boot-source first");

	const char *bad[][3] = {
		{ "/boot-source", "{\"boot_args\":\"x\"}", "kernel_image_path" },
		{ "/boot-source", "{\"kernel_image_path\":1}", "must be a string" },
		{ "/boot-source", "{\"kernel_image_path\":\"/k\",\"x\":1}", "unknown field" },
		{ "/boot-source", "{\"kernel_image_path\":\"/nonexistent\"}", "No such file" },
		{ "/machine-config", "{\"vcpu_count\":2}", "mem_size_mib" },
		{ "/machine-config", "{\"vcpu_count\":2,\"mem_size_mib\":128,\"smt\":true}", "SMT" },
		{ "/machine-config", "{\"vcpu_count\":2,\"mem_size_mib\":128,\"cpu_template\":\"T2\"}",
		  "cpu_template \"T2\" is not supported" },
		{ "/machine-config", "{\"vcpu_count\":2,\"mem_size_mib\":128,\"huge_pages\":\"2M\"}",
		  "huge_pages" },
		{ "/machine-config", "{\"vcpu_count\":99,\"mem_size_mib\":128}", "1 to 64 vCPUs" },
		{ "/network-interfaces/eth0", "{\"iface_id\":\"eth0\"}", "host_dev_name" },
		{ "/network-interfaces/eth0", "{\"iface_id\":\"eth1\",\"host_dev_name\":\"t\"}",
		  "does not match" },
		{ "/network-interfaces/eth0", "{\"iface_id\":\"eth0\",\"host_dev_name\":\"t\","
		  "\"guest_mac\":\"zz\"}", "not a unicast MAC" },
		{ "/network-interfaces/eth0", "{\"iface_id\":\"eth0\",\"host_dev_name\":\"t\","
		  "\"tx_rate_limiter\":{\"ops\":{\"size\":1}}}", "refill_time" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_fault(&r, 400, "PUT", bad[i][0], bad[i][1], bad[i][2]);
	CHECK_EQ(vm.ifaces_added, 0);
	CHECK_EQ(vm.machine.vcpu_count, 1);

	CHECK_EQ(status_of(&r, "PUT", "/boot-source", "{\"kernel_image_path\":\"/k\","
			   "\"boot_args\":\"console=ttyS0\",\"initrd_path\":null}"), 204);
	CHECK(!strcmp(vm.load_strings[0], "/k") && !strcmp(vm.load_strings[1], "console=ttyS0"));
	CHECK_EQ(status_of(&r, "PUT", "/machine-config", "{\"vcpu_count\":2,\"mem_size_mib\":512,"
			   "\"smt\":false,\"cpu_template\":\"None\"}"), 204);
	CHECK_EQ(status_of(&r, "PATCH", "/machine-config", "{\"mem_size_mib\":1024}"), 204);
	CHECK(vm.machine.vcpu_count == 2 && vm.machine.mem_size_mib == 1024);
	CHECK_EQ(status_of(&r, "PUT", "/network-interfaces/eth0", "{\"iface_id\":\"eth0\","
			   "\"host_dev_name\":\"tap0\",\"guest_mac\":\"06:00:ac:10:00:02\","
			   "\"rx_rate_limiter\":{\"bandwidth\":{\"size\":1000,\"refill_time\":100}},"
			   "\"tx_rate_limiter\":{}}"), 204);
	CHECK(vm.ifaces_added == 1 && !strcmp(vm.load_strings[4], "tap0") && vm.last_iface.mac_given);
	CHECK_EQ(vm.last_iface.limit[NET_RX_QUEUE].bandwidth.size, 1000);
	CHECK_EQ(status_of(&r, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}"), 204);

	/* After the start: Firecracker's refusal for each pre-boot request. */
	const char *after[][2] = {
		{ "/boot-source", "{\"kernel_image_path\":\"/k\"}" },
		{ "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":128}" },
		{ "/network-interfaces/eth5", "{\"iface_id\":\"eth5\",\"host_dev_name\":\"tap5\"}" },
		{ "/actions", "{\"action_type\":\"InstanceStart\"}" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(after); i++)
		expect_fault(&r, 400, "PUT", after[i][0], after[i][1], "not supported after starting");
	CHECK_EQ(status_of(&r, "GET", "/machine-config", NULL), 200);
	rig_down(&r);
}

/* The body's member at @path ("a/b"), or NULL. */
static json_t *member(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	return b ? json_object_get(v, b) : v;
}

/* GET /vm/config: Firecracker's full-config shape from what was PUT
 * before boot; the same after the start; the answer is itself a valid
 * --config-file, read back into a new VM unchanged. */
static void test_vm_config(void)
{
	struct fake_vm vm = { .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
	struct api_opts ao = { .vm = &fake_vm_ops, .vm_ctx = &vm };
	struct errbuf eb = { 0 };
	struct rig r;

	rig_up(&r, false);
	expect_fault(&r, 400, "GET", "/vm/config", NULL, "serves a device");
	api_stop(r.api);
	r.api = api_start(&r.loop, &ao, &eb);
	struct reply rp = call(&r, "GET", "/vm/config", NULL);
	CHECK_EQ(rp.status, 200);
	CHECK(rp.head && strcasestr(rp.head, "Content-Type: application/json"));
	CHECK(!strcmp(json_string_value(member(rp.json, "boot-source", "kernel_image_path")), ""));
	CHECK(json_is_null(member(rp.json, "boot-source", "boot_args")));
	CHECK_EQ(json_array_size(member(rp.json, "network-interfaces", NULL)), 0);
	reply_free(&rp);

	CHECK_EQ(status_of(&r, "PUT", "/boot-source", "{\"kernel_image_path\":\"/k\","
			   "\"boot_args\":\"console=ttyS0 reboot=k\"}"), 204);
	CHECK_EQ(status_of(&r, "PUT", "/machine-config", "{\"vcpu_count\":2,\"mem_size_mib\":512}"),
		 204);
	CHECK_EQ(status_of(&r, "PUT", "/network-interfaces/eth0", "{\"iface_id\":\"eth0\","
			   "\"host_dev_name\":\"tap0\",\"guest_mac\":\"06:00:ac:10:00:02\","
			   "\"rx_rate_limiter\":{\"bandwidth\":{\"size\":1000,\"refill_time\":100}}}"), 204);
	rp = call(&r, "GET", "/vm/config", NULL);
	CHECK_EQ(rp.status, 200);
	static const char *const nulls[] = { "balloon", "cpu-config", "logger", "metrics",
		"mmds-config", "vsock", "entropy" };
	for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
		CHECK(json_is_null(member(rp.json, nulls[i], NULL)));
	CHECK_EQ(json_object_size(rp.json), 11);
	CHECK(json_is_array(member(rp.json, "drives", NULL)));
	CHECK(!strcmp(json_string_value(member(rp.json, "boot-source", "kernel_image_path")), "/k"));
	CHECK(!strcmp(json_string_value(member(rp.json, "boot-source", "boot_args")),
		      "console=ttyS0 reboot=k"));
	CHECK(json_is_null(member(rp.json, "boot-source", "initrd_path")));
	CHECK_EQ(json_integer_value(member(rp.json, "machine-config", "vcpu_count")), 2);
	CHECK_EQ(json_integer_value(member(rp.json, "machine-config", "mem_size_mib")), 512);
	json_t *ifc = json_array_get(member(rp.json, "network-interfaces", NULL), 0);
	CHECK(!strcmp(json_string_value(json_object_get(ifc, "iface_id")), "eth0"));
	CHECK(!strcmp(json_string_value(json_object_get(ifc, "host_dev_name")), "tap0"));
	CHECK(!strcmp(json_string_value(json_object_get(ifc, "guest_mac")), "06:00:ac:10:00:02"));
	CHECK_EQ(json_integer_value(member(json_object_get(ifc, "rx_rate_limiter"), "bandwidth",
					   "size")), 1000);
	CHECK_EQ(json_object_size(json_object_get(ifc, "tx_rate_limiter")), 0);

	/* The answer as a --config-file builds the same VM. */
	char path[64];
	snprintf(path, sizeof(path), "/tmp/kvmini-test-vm-config-%d.json", getpid());
	CHECK_EQ(json_dump_file(rp.json, path, 0), 0);
	reply_free(&rp);
	struct fake_vm copy = { .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
	struct api_opts ao2 = { .vm = &fake_vm_ops, .vm_ctx = &copy };
	struct api *second = api_start(&r.loop, &ao2, &eb);
	CHECK_EQ(api_apply_config_file(second, path, &eb), 0);
	if (eb.msg[0])
		fprintf(stderr, "  config file: %s\n", eb.msg);
	CHECK(copy.started && copy.machine.vcpu_count == 2 && copy.machine.mem_size_mib == 512);
	CHECK(!strcmp(copy.load_strings[1], "console=ttyS0 reboot=k"));
	CHECK(copy.ifaces_added == 1 && !memcmp(copy.last_iface.mac, vm.last_iface.mac, 6));
	CHECK_EQ(copy.last_iface.limit[NET_RX_QUEUE].bandwidth.size, 1000);
	api_stop(second);
	unlink(path);

	/* After the start it still answers (the configuration it runs). */
	CHECK_EQ(status_of(&r, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}"), 204);
	CHECK_EQ(status_of(&r, "GET", "/vm/config", NULL), 200);
	expect_fault(&r, 400, "PUT", "/vm/config", "{}", "Invalid request method");
	rig_down(&r);
}

/* PUT /vsock before the start as Firecracker takes it (vsock_id taken and
 * dropped), its shapes refused by name, a second PUT replacing the first,
 * GET /vm/config and a --config-file showing and taking it, and the
 * refusal after the start. The socket file itself: tests/unit/api_curl.sh. */
static void test_vsock_route(void)
{
	struct fake_vm vm = { .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
	struct api_opts ao = { .vm = &fake_vm_ops, .vm_ctx = &vm };
	struct errbuf eb = { 0 };
	struct rig r;

	rig_up(&r, false);
	expect_fault(&r, 400, "PUT", "/vsock", "{\"guest_cid\":3,\"uds_path\":\"/v\"}",
		     "nothing to configure");
	api_stop(r.api);
	r.api = api_start(&r.loop, &ao, &eb);
	const char *bad[][2] = {
		{ "{\"uds_path\":\"/v\"}", "needs \"guest_cid\"" },
		{ "{\"guest_cid\":3}", "needs \"uds_path\"" },
		{ "{\"guest_cid\":\"3\",\"uds_path\":\"/v\"}", "non-negative integer" },
		{ "{\"guest_cid\":-3,\"uds_path\":\"/v\"}", "non-negative integer" },
		{ "{\"guest_cid\":3,\"uds_path\":5}", "must be a string" },
		{ "{\"guest_cid\":3,\"uds_path\":\"/v\",\"vsock_id\":1}", "must be a string" },
		{ "{\"guest_cid\":3,\"uds_path\":\"/v\",\"port\":1}", "unknown field" },
		{ "{\"guest_cid\":1,\"uds_path\":\"/v\"}", "Invalid vsock device: guest_cid 1" },
		{ "[]", "object" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_fault(&r, 400, "PUT", "/vsock", bad[i][0], bad[i][1]);
	CHECK_EQ(vm.vsock_puts, 0);
	CHECK_EQ(status_of(&r, "PUT", "/vsock", "{\"vsock_id\":\"vsock0\",\"guest_cid\":3,"
			   "\"uds_path\":\"/tmp/a.sock\"}"), 204);
	CHECK_EQ(status_of(&r, "PUT", "/vsock", "{\"guest_cid\":52,\"uds_path\":\"/tmp/b.sock\"}"),
		 204);
	CHECK(vm.vsock_puts == 2 && vm.vsock_cid == 52 && !strcmp(vm.vsock_path, "/tmp/b.sock"));
	struct reply rp = call(&r, "GET", "/vm/config", NULL);
	json_t *v = member(rp.json, "vsock", NULL);
	CHECK_EQ(json_object_size(v), 2);
	CHECK_EQ(json_integer_value(json_object_get(v, "guest_cid")), 52);
	CHECK(!strcmp(json_string_value(json_object_get(v, "uds_path")) ?: "", "/tmp/b.sock"));
	reply_free(&rp);
	CHECK_EQ(status_of(&r, "PUT", "/boot-source", "{\"kernel_image_path\":\"/k\"}"), 204);
	/* GET /vm/config's answer as a --config-file: the same vsock. */
	char path[64];
	snprintf(path, sizeof(path), "/tmp/kvmini-test-vsock-config-%d.json", getpid());
	rp = call(&r, "GET", "/vm/config", NULL);
	CHECK_EQ(json_dump_file(rp.json, path, 0), 0);
	reply_free(&rp);
	struct fake_vm copy = { .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
	struct api_opts ao2 = { .vm = &fake_vm_ops, .vm_ctx = &copy };
	struct api *second = api_start(&r.loop, &ao2, &eb);
	CHECK_EQ(api_apply_config_file(second, path, &eb), 0);
	CHECK(copy.started && copy.vsock_cid == 52 && !strcmp(copy.vsock_path, "/tmp/b.sock"));
	api_stop(second);
	unlink(path);
	CHECK_EQ(status_of(&r, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}"), 204);
	expect_fault(&r, 400, "PUT", "/vsock", "{\"guest_cid\":9,\"uds_path\":\"/tmp/c.sock\"}",
		     "The requested operation is not supported after starting the microVM.");
	CHECK_EQ(vm.vsock_cid, 52);
	rig_down(&r);
}

/* The path_on_host GET /vm/config shows for the first drive. */
static const char *drive_path_shown(struct rig *r)
{
	static char buf[64];
	struct reply rp = call(r, "GET", "/vm/config", NULL);
	json_t *d = json_array_get(member(rp.json, "drives", NULL), 0);

	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(d, "path_on_host")));
	reply_free(&rp);
	return buf;
}

/* PUT /drives before the start and PATCH /drives after it, as Firecracker
 * takes and refuses them: PATCH before the start and PUT after it are
 * refused, a PATCH reaches the VM with the new path (which GET /vm/config
 * then shows), a rate_limiter in PUT and PATCH (alone or with a path) is
 * the drive's and shown; an unknown id, a file that does not open, a
 * limiter out of range, a body with neither path nor limiter, with another
 * id, or with unknown keys are each refused by name and change nothing. */
static void test_drive_routes(void)
{
	struct fake_vm vm = { .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
	struct api_opts ao = { .vm = &fake_vm_ops, .vm_ctx = &vm };
	struct errbuf eb = { 0 };
	const char *patch = "{\"drive_id\":\"rootfs\",\"path_on_host\":\"/dev/null\"}";
	struct rig r;

	rig_up(&r, false);
	expect_fault(&r, 400, "PATCH", "/drives/rootfs", patch, "no drives to patch");
	api_stop(r.api);
	r.api = api_start(&r.loop, &ao, &eb);
	CHECK_EQ(status_of(&r, "PUT", "/drives/rootfs", "{\"drive_id\":\"rootfs\","
			   "\"path_on_host\":\"/tmp\",\"is_root_device\":true}"), 204);
	expect_fault(&r, 400, "PATCH", "/drives/rootfs", patch, "not supported before starting");
	CHECK(!strcmp(drive_path_shown(&r), "/tmp"));
	vm.started = true;
	expect_fault(&r, 400, "PUT", "/drives/rootfs", "{\"drive_id\":\"rootfs\","
		     "\"path_on_host\":\"/tmp\",\"is_root_device\":true}", "after starting");
	CHECK_EQ(status_of(&r, "PATCH", "/drives/rootfs", patch), 204);
	CHECK_EQ(vm.drive_patches, 1);
	CHECK(!strcmp(drive_path_shown(&r), "/dev/null"));
	/* An empty limiter is no limit: taken. */
	CHECK_EQ(status_of(&r, "PATCH", "/drives/rootfs", "{\"drive_id\":\"rootfs\","
			   "\"path_on_host\":\"/tmp\",\"rate_limiter\":{}}"), 204);
	CHECK(!strcmp(drive_path_shown(&r), "/tmp"));
	expect_fault(&r, 400, "PATCH", "/drives/data", "{\"drive_id\":\"data\","
		     "\"path_on_host\":\"/dev/null\"}",
		     "Unable to patch the block device: no drive \"data\"");
	expect_fault(&r, 400, "PATCH", "/drives/rootfs", "{\"drive_id\":\"rootfs\","
		     "\"path_on_host\":\"/nonexistent/disk.img\"}",
		     "Unable to patch the block device: /nonexistent/disk.img: No such file");
	/* A limiter alone: the path stays, the limiter is the drive's. */
	CHECK_EQ(status_of(&r, "PATCH", "/drives/rootfs", "{\"drive_id\":\"rootfs\","
			   "\"rate_limiter\":{\"bandwidth\":{\"size\":1000,\"refill_time\":100},"
			   "\"ops\":{\"size\":10,\"one_time_burst\":5,\"refill_time\":1000}}}"), 204);
	CHECK(!strcmp(drive_path_shown(&r), "/tmp"));
	CHECK_EQ(vm.drives[0].limit.bandwidth.size, 1000);
	CHECK_EQ(vm.drives[0].limit.ops.one_time_burst, 5);
	struct reply rp = call(&r, "GET", "/vm/config", NULL);
	json_t *rl = json_object_get(json_array_get(member(rp.json, "drives", NULL), 0),
				     "rate_limiter");
	CHECK(json_integer_value(json_object_get(json_object_get(rl, "ops"), "refill_time")) == 1000);
	reply_free(&rp);
	/* A bucket the PATCH does not name stays. */
	CHECK_EQ(status_of(&r, "PATCH", "/drives/rootfs", "{\"drive_id\":\"rootfs\","
			   "\"rate_limiter\":{\"bandwidth\":{\"size\":2000,\"refill_time\":100}}}"),
		 204);
	CHECK_EQ(vm.drives[0].limit.bandwidth.size, 2000);
	CHECK_EQ(vm.drives[0].limit.ops.size, 10);
	expect_fault(&r, 400, "PATCH", "/drives/rootfs", "{\"drive_id\":\"rootfs\","
		     "\"rate_limiter\":{\"ops\":{\"size\":\"ten\",\"refill_time\":1}}}",
		     "size");
	expect_fault(&r, 400, "PATCH", "/drives/rootfs", "{\"drive_id\":\"rootfs\"}",
		     "no path_on_host and no rate_limiter, nothing to change");
	expect_fault(&r, 400, "PATCH", "/drives/rootfs", "{\"drive_id\":\"other\","
		     "\"path_on_host\":\"/dev/null\"}", "does not match");
	expect_fault(&r, 400, "PATCH", "/drives/rootfs", "{\"path_on_host\":\"/dev/null\"}",
		     "needs \"drive_id\"");
	expect_fault(&r, 400, "PATCH", "/drives/rootfs", "{\"drive_id\":\"rootfs\","
		     "\"path_on_host\":\"/dev/null\",\"is_read_only\":true}",
		     "unknown field \"is_read_only\"");
	expect_fault(&r, 400, "PATCH", "/drives/rootfs", "{\"drive_id\":\"rootfs\","
		     "\"path_on_host\":7}", "\"path_on_host\" in the drive must be a string");
	CHECK_EQ(vm.drive_patches, 4);
	CHECK(!strcmp(drive_path_shown(&r), "/tmp"));
	CHECK_EQ(vm.drives[0].limit.bandwidth.size, 2000);
	rig_down(&r);
}

/* PUT /logger: Firecracker's body, its level names, its refusals; the
 * lines go to the file (a FIFO without a reader does not block); after the
 * start it is refused; --config-file's "logger" takes the same body. */
static void test_logger(void)
{
	struct fake_vm vm = { .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
	struct api_opts ao = { .vm = &fake_vm_ops, .vm_ctx = &vm };
	enum log_level saved = log_threshold;
	struct errbuf eb = { 0 };
	char path[64], fifo[64], body[256], line[256] = "";
	struct rig r;

	snprintf(path, sizeof(path), "/tmp/kvmini-test-logger-%d.log", getpid());
	snprintf(fifo, sizeof(fifo), "/tmp/kvmini-test-logger-%d.fifo", getpid());
	unlink(path);
	unlink(fifo);
	rig_up(&r, false);
	api_stop(r.api);
	r.api = api_start(&r.loop, &ao, &eb);
	snprintf(body, sizeof(body), "{\"log_path\":\"%s\",\"level\":\"Warning\","
		 "\"show_level\":true,\"show_log_origin\":false,\"module\":\"api\"}", path);
	CHECK_EQ(status_of(&r, "PUT", "/logger", body), 204);
	CHECK_EQ(log_threshold, LOG_WARN);
	log_warn("logger test line");
	log_info("not at level Warning");
	FILE *f = fopen(path, "r");
	CHECK(f && fgets(line, sizeof(line), f));
	CHECK(strstr(line, "warning: logger test line") != NULL);
	CHECK(f && !fgets(line, sizeof(line), f));
	if (f)
		fclose(f);
	/* Each level name in any case; what is not given stays. */
	const char *levels[][2] = { { "off", "-1" }, { "ERROR", "0" }, { "warn", "1" },
				    { "Info", "2" }, { "debug", "3" }, { "Trace", "3" } };
	for (size_t i = 0; i < ARRAY_SIZE(levels); i++) {
		snprintf(body, sizeof(body), "{\"level\":\"%s\"}", levels[i][0]);
		CHECK_EQ(status_of(&r, "PUT", "/logger", body), 204);
		CHECK_EQ((int)log_threshold, atoi(levels[i][1]));
	}
	CHECK_EQ(status_of(&r, "PUT", "/logger", "{}"), 204);
	CHECK_EQ(log_threshold, LOG_DEBUG);
	CHECK_EQ(mkfifo(fifo, 0600), 0);
	snprintf(body, sizeof(body), "{\"log_path\":\"%s\"}", fifo);
	CHECK_EQ(status_of(&r, "PUT", "/logger", body), 204);     /* no reader: no block */
	log_threshold = LOG_ERROR;
	expect_fault(&r, 400, "PUT", "/logger", "{\"level\":\"verbose\"}", "Invalid LevelFilter");
	expect_fault(&r, 400, "PUT", "/logger", "{\"log_path\":\"/nonexistent/dir/log\"}",
		     "Failed to open target file: No such file or directory");
	expect_fault(&r, 400, "PUT", "/logger", "{\"show_level\":\"yes\"}", "true or false");
	expect_fault(&r, 400, "PUT", "/logger", "{\"level\":\"Info\",\"colour\":1}", "colour");
	expect_fault(&r, 400, "GET", "/logger", NULL, "Invalid request method");
	CHECK_EQ(log_threshold, LOG_ERROR);                        /* refusals change nothing */
	/* --config-file: "logger" first, then the VM. */
	snprintf(body, sizeof(body), "{\"logger\":{\"level\":\"Warning\"},\"boot-source\":"
		 "{\"kernel_image_path\":\"/k\"}}");
	f = fopen(path, "w");
	fputs(body, f);
	fclose(f);
	CHECK_EQ(api_apply_config_file(r.api, path, &eb), 0);
	CHECK(vm.started && log_threshold == LOG_WARN);
	expect_fault(&r, 400, "PUT", "/logger", "{\"level\":\"Info\"}",
		     "not supported after starting the microVM");
	log_set_path(NULL);
	log_threshold = saved;
	unlink(path);
	unlink(fifo);
	rig_down(&r);
}

/* --config-file: the sections reach the VM as the same requests would,
 * then InstanceStart; a bad section stops before the start, with why. */
/* The balloon's routes: PUT before the start only, PATCH and the
 * statistics after it only, Firecracker's shapes and refusals. */
static void test_balloon_routes(void)
{
	struct fake_vm vm = { .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
	struct api_opts ao = { .vm = &fake_vm_ops, .vm_ctx = &vm };
	struct errbuf eb = { 0 };
	struct rig r;

	rig_up(&r, false);
	expect_fault(&r, 400, "PUT", "/balloon", "{\"amount_mib\":1,\"deflate_on_oom\":true}",
		     "no balloon device");
	api_stop(r.api);
	r.api = api_start(&r.loop, &ao, &eb);
	expect_fault(&r, 400, "GET", "/balloon", NULL, "Balloon config error: No balloon device");
	const char *bad[][2] = {
		{ "{\"deflate_on_oom\":true}", "needs \"amount_mib\"" },
		{ "{\"amount_mib\":1}", "needs \"deflate_on_oom\"" },
		{ "{\"amount_mib\":-1,\"deflate_on_oom\":true}", "non-negative integer" },
		{ "{\"amount_mib\":\"1\",\"deflate_on_oom\":true}", "non-negative integer" },
		{ "{\"amount_mib\":4294967296,\"deflate_on_oom\":true}", "out of range" },
		{ "{\"amount_mib\":1,\"deflate_on_oom\":1}", "true or false" },
		{ "{\"amount_mib\":1,\"deflate_on_oom\":true,\"stats_polling_interval_s\":65536}",
		  "out of range" },
		{ "{\"amount_mib\":1,\"deflate_on_oom\":true,\"x\":1}", "unknown field \"x\"" },
		{ "{\"amount_mib\":1,\"deflate_on_oom\":true,\"free_page_hinting\":true}",
		  "no free page hinting" },
		{ "{\"amount_mib\":1,\"deflate_on_oom\":true,\"free_page_reporting\":true}",
		  "no free page reporting" },
		{ "{\"amount_mib\":257,\"deflate_on_oom\":true}",
		  "Balloon config error: Amount of pages requested is too large." },
		{ "[]", "object" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_fault(&r, 400, "PUT", "/balloon", bad[i][0], bad[i][1]);
	CHECK(!vm.balloon);
	/* The runtime requests before the start: Firecracker's refusal. */
	expect_fault(&r, 400, "PATCH", "/balloon", "{\"amount_mib\":1}", "not supported before");
	expect_fault(&r, 400, "GET", "/balloon/statistics", NULL, "not supported before");
	expect_fault(&r, 400, "PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\":1}",
		     "not supported before");
	CHECK_EQ(status_of(&r, "PUT", "/balloon", "{\"amount_mib\":64,\"deflate_on_oom\":true,"
			   "\"stats_polling_interval_s\":1,\"free_page_hinting\":false}"), 204);
	struct reply rp = call(&r, "GET", "/balloon", NULL);
	CHECK_EQ(rp.status, 200);
	CHECK_EQ(json_integer_value(json_object_get(rp.json, "amount_mib")), 64);
	CHECK(json_is_true(json_object_get(rp.json, "deflate_on_oom")));
	CHECK_EQ(json_integer_value(json_object_get(rp.json, "stats_polling_interval_s")), 1);
	reply_free(&rp);
	rp = call(&r, "GET", "/vm/config", NULL);
	CHECK_EQ(json_integer_value(member(rp.json, "balloon", "amount_mib")), 64);
	reply_free(&rp);

	CHECK_EQ(status_of(&r, "PUT", "/boot-source", "{\"kernel_image_path\":\"/k\"}"), 204);
	CHECK_EQ(status_of(&r, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}"), 204);
	expect_fault(&r, 400, "PUT", "/balloon", "{\"amount_mib\":1,\"deflate_on_oom\":true}",
		     "not supported after starting");
	/* The driver has not taken the device yet. */
	expect_fault(&r, 400, "PATCH", "/balloon", "{\"amount_mib\":1}",
		     "Balloon update error: Balloon: Device not activated yet.");
	vm.balloon_active = true;
	expect_fault(&r, 400, "PATCH", "/balloon", "{}", "needs \"amount_mib\"");
	expect_fault(&r, 400, "PATCH", "/balloon", "{\"amount_mib\":1,\"deflate_on_oom\":true}",
		     "unknown field \"deflate_on_oom\"");
	CHECK_EQ(status_of(&r, "PATCH", "/balloon", "{\"amount_mib\":32}"), 204);
	CHECK_EQ(vm.balloon_cfg.amount_mib, 32);
	vm.balloon_stats = (struct api_balloon_stats){ .target_pages = 32 * 256,
		.actual_pages = 16 * 256 + 3, .seen = 1u << 5 | 1u << 0, .val = { [0] = 4, [5] = 999 } };
	rp = call(&r, "GET", "/balloon/statistics", NULL);
	CHECK_EQ(rp.status, 200);
	CHECK_EQ(json_integer_value(json_object_get(rp.json, "target_pages")), 32 * 256);
	CHECK_EQ(json_integer_value(json_object_get(rp.json, "actual_pages")), 16 * 256 + 3);
	CHECK_EQ(json_integer_value(json_object_get(rp.json, "target_mib")), 32);
	CHECK_EQ(json_integer_value(json_object_get(rp.json, "actual_mib")), 16);
	CHECK_EQ(json_integer_value(json_object_get(rp.json, "swap_in")), 4);
	CHECK_EQ(json_integer_value(json_object_get(rp.json, "total_memory")), 999);
	CHECK(!json_object_get(rp.json, "free_memory"));      /* not sent: left out */
	CHECK_EQ(json_object_size(rp.json), 6);
	reply_free(&rp);
	CHECK_EQ(status_of(&r, "PATCH", "/balloon/statistics",
			   "{\"stats_polling_interval_s\":5}"), 204);
	expect_fault(&r, 400, "PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\":0}",
		     "Statistics cannot be enabled/disabled after activation.");
	expect_fault(&r, 400, "PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\":-1}",
		     "non-negative integer");
	expect_fault(&r, 400, "DELETE", "/balloon", NULL, "");
	/* Statistics off: GET is refused, switching them on too. */
	vm.balloon_cfg.stats_polling_interval_s = 0;
	expect_fault(&r, 400, "GET", "/balloon/statistics", NULL,
		     "Received stats query when stats are disabled.");
	expect_fault(&r, 400, "PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\":3}",
		     "cannot be enabled/disabled");
	CHECK_EQ(status_of(&r, "PATCH", "/balloon/statistics",
			   "{\"stats_polling_interval_s\":0}"), 204);
	/* A VM started without one. */
	vm.balloon = false;
	expect_fault(&r, 400, "PATCH", "/balloon", "{\"amount_mib\":1}", "No balloon device found.");
	expect_fault(&r, 400, "GET", "/balloon/statistics", NULL, "No balloon device found.");
	rig_down(&r);
}

static void test_config_file(void)
{
	struct fake_vm vm = { .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
	struct api_opts ao = { .vm = &fake_vm_ops, .vm_ctx = &vm };
	struct errbuf eb = { 0 };
	char path[64];
	struct rig r;

	rig_up(&r, false);
	api_stop(r.api);
	r.api = api_start(&r.loop, &ao, &eb);
	snprintf(path, sizeof(path), "/tmp/kvmini-test-api-config-%d.json", getpid());
	FILE *f = fopen(path, "w");
	fputs("{\"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap3\"}],"
	      " \"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [], \"vsock\": null,"
	      " \"balloon\": {\"amount_mib\": 48, \"deflate_on_oom\": false},"
	      " \"machine-config\": {\"vcpu_count\": 4, \"mem_size_mib\": 64}}", f);
	fclose(f);
	CHECK_EQ(api_apply_config_file(r.api, path, &eb), 0);
	CHECK(vm.started && vm.machine.vcpu_count == 4 && vm.ifaces_added == 1);
	CHECK(vm.balloon && vm.balloon_cfg.amount_mib == 48);  /* after machine-config's 64 MiB */
	CHECK(!strcmp(vm.load_strings[0], "/k") && !strcmp(vm.load_strings[4], "tap3"));

	/* Each refusal names its section; nothing after it runs. */
	const char *bad[][2] = {
		{ "{\"machine-config\": {\"vcpu_count\": 99, \"mem_size_mib\": 64}}",
		  "machine-config: Invalid machine configuration: vcpu_count 99" },
		{ "{\"network-interfaces\": [{\"host_dev_name\": \"t\"}]}",
		  "network-interfaces[0]: needs \"iface_id\"" },
		{ "{\"vsock\": {\"guest_cid\": 3}}", "vsock: the vsock device needs \"uds_path\"" },
		{ "{\"balloon\": {\"amount_mib\": 1}}", "balloon: the balloon device needs" },
		{ "{\"balloon\": {\"amount_mib\": 300, \"deflate_on_oom\": false}}",
		  "balloon: Balloon config error: Amount of pages requested is too large." },
		{ "{\"vsock\": {\"guest_cid\": 2, \"uds_path\": \"/v\"}}",
		  "vsock: Invalid vsock device: guest_cid 2" },
		{ "{\"drives\": [{\"is_root_device\": true}]}", "drives[0]: needs \"drive_id\"" },
		{ "{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"extra\": 1}", "unknown key" },
		{ "[1]", "not a JSON object" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		vm = (struct fake_vm){ .machine = { .vcpu_count = 1, .mem_size_mib = 256 } };
		f = fopen(path, "w");
		fputs(bad[i][0], f);
		fclose(f);
		eb.msg[0] = '\0';
		CHECK(api_apply_config_file(r.api, path, &eb) < 0);
		CHECK(strstr(eb.msg, bad[i][1]) != NULL);
		if (!strstr(eb.msg, bad[i][1]))
			fprintf(stderr, "  wanted \"%s\" in \"%s\"\n", bad[i][1], eb.msg);
		CHECK(!vm.started);
	}
	unlink(path);
	rig_down(&r);
}

static void test_patch_rate_limiters(void)
{
	struct rig r;
	struct rate_limiter_config rx, tx;

	rig_up(&r, false);
	CHECK_EQ(status_of(&r, "PATCH", "/network-interfaces/eth0",
			   "{\"iface_id\":\"eth0\",\"tx_rate_limiter\":{\"bandwidth\":{\"size\":125000,"
			   "\"one_time_burst\":1000000,\"refill_time\":100},\"ops\":{\"size\":1000,"
			   "\"refill_time\":1000}}}"), 204);
	net_device_get_rate_limit(&r.net, NET_TX_QUEUE, &tx);
	CHECK_EQ(tx.bandwidth.size, 125000);
	CHECK_EQ(tx.bandwidth.one_time_burst, 1000000);
	CHECK_EQ(tx.bandwidth.refill_time, 100);
	CHECK_EQ(tx.ops.size, 1000);
	CHECK(rate_limiter_active(&r.net.pairs[0].tx_limiter));
	CHECK(!rate_limiter_active(&r.net.pairs[0].rx_limiter));
	/* PATCH of RX leaves TX alone; a PATCH naming only one bucket keeps the other. */
	CHECK_EQ(status_of(&r, "PATCH", "/network-interfaces/eth0",
			   "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"ops\":{\"size\":10,"
			   "\"refill_time\":1}}}"), 204);
	CHECK_EQ(status_of(&r, "PATCH", "/network-interfaces/eth0",
			   "{\"iface_id\":\"eth0\",\"tx_rate_limiter\":{\"bandwidth\":{\"size\":500,"
			   "\"refill_time\":10}}}"), 204);
	net_device_get_rate_limit(&r.net, NET_TX_QUEUE, &tx);
	net_device_get_rate_limit(&r.net, NET_RX_QUEUE, &rx);
	CHECK_EQ(tx.bandwidth.size, 500);
	CHECK_EQ(tx.bandwidth.one_time_burst, 0);
	CHECK_EQ(tx.ops.size, 1000);
	CHECK_EQ(rx.ops.size, 10);
	/* Size 0 removes a bucket. */
	CHECK_EQ(status_of(&r, "PATCH", "/network-interfaces/eth0",
			   "{\"iface_id\":\"eth0\",\"tx_rate_limiter\":{\"bandwidth\":{\"size\":0,"
			   "\"refill_time\":0},\"ops\":{\"size\":0,\"refill_time\":0}}}"), 204);
	CHECK(!rate_limiter_active(&r.net.pairs[0].tx_limiter));
	/* GET shows what is set. */
	struct reply rp = call(&r, "GET", "/network-interfaces/eth0", NULL);
	CHECK_EQ(rp.status, 200);
	json_t *rxj = json_object_get(rp.json, "rx_rate_limiter");
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(rxj, "ops"), "size")), 10);
	CHECK(!strcmp(json_string_value(json_object_get(rp.json, "guest_mac")), "52:54:00:01:02:03"));
	CHECK(!strcmp(json_string_value(json_object_get(rp.json, "host_dev_name")), "tap7"));
	reply_free(&rp);
	expect_fault(&r, 400, "GET", "/network-interfaces/eth9", NULL, "no network interface");
	rig_down(&r);
}

static void test_put_interface_matching(void)
{
	struct rig r;
	struct rate_limiter_config rx, tx;

	rig_up(&r, false);
	CHECK_EQ(status_of(&r, "PATCH", "/network-interfaces/eth0",
			   "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"ops\":{\"size\":10,"
			   "\"refill_time\":1}}}"), 204);
	/* PUT replaces: rx (absent) becomes unlimited, tx as given. */
	CHECK_EQ(status_of(&r, "PUT", "/network-interfaces/eth0",
			   "{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap7\",\"guest_mac\":"
			   "\"52:54:00:01:02:03\",\"tx_rate_limiter\":{\"bandwidth\":{\"size\":2000,"
			   "\"refill_time\":20}}}"), 204);
	net_device_get_rate_limit(&r.net, NET_TX_QUEUE, &tx);
	net_device_get_rate_limit(&r.net, NET_RX_QUEUE, &rx);
	CHECK_EQ(tx.bandwidth.size, 2000);
	CHECK_EQ(rx.ops.size, 0);
	CHECK_EQ(status_of(&r, "PUT", "/network-interfaces/eth0",
			   "{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap7\"}"), 204);
	expect_fault(&r, 400, "PUT", "/network-interfaces/eth0",
		     "{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap8\"}", "attached to \"tap7\"");
	expect_fault(&r, 400, "PUT", "/network-interfaces/eth0",
		     "{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap7\",\"guest_mac\":\"52:54:00:01:02:04\"}",
		     "not this interface's MAC");
	expect_fault(&r, 400, "PUT", "/network-interfaces/eth0",
		     "{\"iface_id\":\"eth0\"}", "needs \"host_dev_name\"");
	expect_fault(&r, 400, "PUT", "/network-interfaces/eth1",
		     "{\"iface_id\":\"eth1\",\"host_dev_name\":\"tap7\"}", "no network interface \"eth1\"");
	expect_fault(&r, 400, "PATCH", "/network-interfaces/eth0",
		     "{\"iface_id\":\"eth1\"}", "does not match the id from the body");
	rig_down(&r);
}

static void test_interface_body_errors(void)
{
	struct rig r;
	static const struct { const char *body, *needle; } cases[] = {
		{ "", "needs a JSON body" },
		{ "{\"iface_id\":", "not valid JSON" },
		{ "[1,2]", "must be a JSON object" },
		{ "{\"iface_id\":\"eth0\",\"iface_id\":\"eth0\"}", "not valid JSON" },
		{ "{\"iface_id\":\"eth0\",\"colour\":1}", "unknown field \"colour\"" },
		{ "{\"iface_id\":7}", "must be a string" },
		{ "{\"rx_rate_limiter\":{}}", "needs \"iface_id\"" },
		{ "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":[]}", "rx_rate_limiter must be an object" },
		{ "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"bw\":{}}}", "unknown field \"bw\"" },
		{ "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"bandwidth\":{\"refill_time\":1}}}",
		  "needs \"size\"" },
		{ "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"bandwidth\":{\"size\":1}}}",
		  "needs \"refill_time\"" },
		{ "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"bandwidth\":{\"size\":-1,\"refill_time\":1}}}",
		  "non-negative integer" },
		{ "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"ops\":{\"size\":\"5\",\"refill_time\":1}}}",
		  "non-negative integer" },
		{ "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"ops\":{\"size\":1.5,\"refill_time\":1}}}",
		  "non-negative integer" },
		{ "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"ops\":{\"size\":1,\"refill_time\":1,\"x\":0}}}",
		  "unknown field \"x\"" },
		{ "{\"iface_id\":\"eth0\",\"rx_rate_limiter\":{\"ops\":{\"size\":1,\"refill_time\":1}},"
		  "\"tx_rate_limiter\":{\"bandwidth\":{\"size\":9007199254740993,\"refill_time\":1}}}",
		  "above 2^52" },
	};

	rig_up(&r, false);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_fault(&r, 400, "PATCH", "/network-interfaces/eth0", cases[i].body,
			     cases[i].needle);
	/* The last case's valid RX part was not applied either. */
	CHECK(!rate_limiter_active(&r.net.pairs[0].rx_limiter));
	CHECK(!rate_limiter_active(&r.net.pairs[0].tx_limiter));
	rig_down(&r);
}

static char *store(struct rig *r)
{
	struct reply rp = call(r, "GET", "/mmds", NULL);
	char *b = rp.body;

	CHECK_EQ(rp.status, 200);
	rp.body = NULL;
	reply_free(&rp);
	return b;
}

static void test_mmds_routes(void)
{
	struct rig r;
	struct mmds_config cfg;

	rig_up(&r, true);
	/* Empty until the first PUT, and nothing to patch before it. */
	char *s0 = store(&r);
	CHECK(!strcmp(s0, "{}"));
	free(s0);
	expect_fault(&r, 400, "PATCH", "/mmds", "{\"a\":1}", "The MMDS data store is not initialized.");
	CHECK_EQ(status_of(&r, "PUT", "/mmds", "{\"latest\":{\"meta-data\":{\"id\":\"i-1\"}}}"), 204);
	char *s = store(&r);
	CHECK(!strcmp(s, "{\"latest\":{\"meta-data\":{\"id\":\"i-1\"}}}"));
	free(s);
	CHECK_EQ(status_of(&r, "PATCH", "/mmds",
			   "{\"latest\":{\"meta-data\":{\"id\":null,\"zone\":\"z\"}},\"n\":1}"), 204);
	s = store(&r);
	CHECK(!strcmp(s, "{\"latest\":{\"meta-data\":{\"zone\":\"z\"}},\"n\":1}"));
	free(s);
	expect_fault(&r, 400, "PUT", "/mmds", "[1", "not valid JSON");
	expect_fault(&r, 400, "PATCH", "/mmds", "{nope", "not valid JSON");
	char big[400];
	snprintf(big, sizeof(big), "{\"k\":\"%0300d\"}", 0);
	expect_fault(&r, 413, "PUT", "/mmds", big, "exceed its limit of 200 bytes");
	s = store(&r);
	CHECK(strstr(s, "zone"));   /* unchanged */
	free(s);
	/* Any JSON value is a store, as in Firecracker. */
	CHECK_EQ(status_of(&r, "PUT", "/mmds", "\"text\""), 204);
	s = store(&r);
	CHECK(!strcmp(s, "\"text\""));
	free(s);
	CHECK_EQ(status_of(&r, "PUT", "/mmds", "{\"latest\":{\"meta-data\":{\"zone\":\"z\"}}}"), 204);

	/* V2 is current; V1, named or by default, is deprecated: 204 with
	 * "Deprecation: true", counted in deprecated_api. */
	struct reply rp = call(&r, "PUT", "/mmds/config",
			       "{\"version\":\"V2\",\"network_interfaces\":[\"eth0\"],"
			       "\"imds_compat\":true}");
	CHECK_EQ(rp.status, 204);
	CHECK(!strstr(rp.head, "Deprecation"));
	reply_free(&rp);
	mmds_get_config(r.mmds, &cfg);
	CHECK_EQ(cfg.version, MMDS_V2);
	CHECK(cfg.imds_compat);
	rp = call(&r, "PUT", "/mmds/config",
		  "{\"version\":\"V1\",\"ipv4_address\":\"169.254.169.254\","
		  "\"network_interfaces\":[\"eth0\"]}");
	CHECK_EQ(rp.status, 204);
	CHECK(strstr(rp.head, "\r\nDeprecation: true") != NULL);
	reply_free(&rp);
	mmds_get_config(r.mmds, &cfg);
	CHECK_EQ(cfg.version, MMDS_V1);
	CHECK(!cfg.imds_compat);
	rp = call(&r, "PUT", "/mmds/config", "{\"network_interfaces\":[\"eth0\"]}");
	CHECK(strstr(rp.head, "\r\nDeprecation: true") != NULL);
	reply_free(&rp);
	char *line = api_metrics_line(r.api);
	CHECK(line && strstr(line, "\"deprecated_api\":{\"deprecated_http_api_calls\":2}"));
	free(line);
	expect_fault(&r, 400, "PUT", "/mmds/config",
		     "{\"network_interfaces\":[\"eth0\"],\"imds_compat\":1}", "imds_compat must be");
	expect_fault(&r, 400, "PUT", "/mmds/config", "{\"version\":\"V3\",\"network_interfaces\":[\"eth0\"]}",
		     "not V1 or V2");
	expect_fault(&r, 400, "PUT", "/mmds/config", "{\"version\":\"V2\"}", "needs \"network_interfaces\"");
	expect_fault(&r, 400, "PUT", "/mmds/config", "{\"network_interfaces\":[]}", "non-empty list");
	expect_fault(&r, 400, "PUT", "/mmds/config", "{\"network_interfaces\":[\"eth1\"]}",
		     "network_interfaces[0] is not an interface");
	expect_fault(&r, 400, "PUT", "/mmds/config",
		     "{\"network_interfaces\":[\"eth0\"],\"ipv4_address\":\"169.254.1.1\"}",
		     "cannot change while the interface runs");
	expect_fault(&r, 400, "PUT", "/mmds/config",
		     "{\"network_interfaces\":[\"eth0\"],\"ipv4_address\":\"nope\"}", "not an IPv4 address");
	expect_fault(&r, 400, "PUT", "/mmds/config",
		     "{\"network_interfaces\":[\"eth0\"],\"imds\":true}", "unknown field \"imds\"");
	mmds_get_config(r.mmds, &cfg);
	CHECK_EQ(cfg.version, MMDS_V1);
	rig_down(&r);

	/* Without a store every /mmds route says so. */
	rig_up(&r, false);
	expect_fault(&r, 400, "GET", "/mmds", NULL, "MMDS is not enabled");
	expect_fault(&r, 400, "PUT", "/mmds", "{}", "MMDS is not enabled");
	expect_fault(&r, 400, "PUT", "/mmds/config", "{\"network_interfaces\":[\"eth0\"]}",
		     "MMDS is not enabled");
	rig_down(&r);
}

static void test_metrics(void)
{
	struct rig r;
	char path[64];

	rig_up(&r, true);
	r.net.counters.tx_packets = 17;
	r.net.counters.rx_rate_limited = 3;
	struct reply rp = call(&r, "GET", "/metrics", NULL);
	CHECK_EQ(rp.status, 200);
	json_t *net = json_object_get(rp.json, "net"), *eth0 = json_object_get(rp.json, "net_eth0");
	CHECK_EQ(json_integer_value(json_object_get(net, "tx_packets")), 17);
	CHECK_EQ(json_integer_value(json_object_get(eth0, "rx_rate_limited")), 3);
	/* Every device counter is there. */
	json_t *mm = json_object_get(rp.json, "mmds");
#define X(name, doc) CHECK(json_object_get(net, #name) != NULL);
	NET_COUNTERS(X)
#undef X
#define X(name, doc) CHECK(json_object_get(mm, #name) != NULL);
	MMDS_COUNTERS(X)
#undef X
	json_t *extra = json_object_get(rp.json, "extra");
	CHECK_EQ(json_integer_value(json_object_get(extra, "thing")), 42);
	CHECK_EQ(json_integer_value(json_object_get(extra, "other_kind")), 43);
	CHECK(json_integer_value(json_object_get(rp.json, "utc_timestamp_ms")) > 1600000000000ll);
	reply_free(&rp);

	expect_fault(&r, 400, "PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}",
		     "PUT /metrics first");
	expect_fault(&r, 400, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}",
		     "nothing to configure");
	expect_fault(&r, 400, "PUT", "/actions", "{\"action_type\":\"Reboot\"}",
		     "not supported");
	expect_fault(&r, 400, "PUT", "/actions", "{}", "needs \"action_type\"");
	snprintf(path, sizeof(path), "/tmp/kvmini-test-api-metrics-%d", getpid());
	unlink(path);
	expect_fault(&r, 400, "PUT", "/metrics", "{\"metrics_path\":\"/nonexistent/dir/m\"}",
		     "cannot open metrics_path");
	char body[128];
	snprintf(body, sizeof(body), "{\"metrics_path\":\"%s\"}", path);
	CHECK_EQ(status_of(&r, "PUT", "/metrics", body), 204);
	expect_fault(&r, 400, "PUT", "/metrics", body, "Reinitialization of metrics not allowed.");
	CHECK_EQ(status_of(&r, "PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}"), 204);
	CHECK_EQ(status_of(&r, "PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}"), 204);
	/* Two JSON lines, each a whole metrics object. */
	FILE *f = fopen(path, "r");
	char line[8192];
	int lines = 0;
	while (f && fgets(line, sizeof(line), f)) {
		json_t *j = json_loads(line, 0, NULL);
		CHECK(j && json_object_get(j, "net_eth0"));
		json_decref(j);
		lines++;
	}
	if (f)
		fclose(f);
	CHECK_EQ(lines, 2);
	CHECK_EQ(api_counters(r.api)->metrics_flushes, 2);
	unlink(path);
	rig_down(&r);
}

/* Two interfaces (kvmini run with two --net): each found by its id, the
 * other untouched; MMDS only where it was started; per-interface and
 * aggregate metrics. */
static void test_two_interfaces(void)
{
	struct rig r;
	struct net_device wan;
	struct net_config_opts no = { .mac = { 0x52, 0x54, 0, 1, 2, 4 }, .mtu = 1500 };
	struct errbuf eb = { 0 };

	rig_up(&r, true);
	struct net_backend *be = net_loopback_create(&r.loop, NULL, &eb);
	CHECK_EQ(net_device_init(&wan, &no, be, &r.loop), 0);
	api_stop(r.api);
	struct api_opts ao = { .ifaces = { { &r.net, "eth0", NULL, true }, { &wan, "wan", NULL, false } },
			       .n_ifaces = 2, .mmds = r.mmds };
	r.api = api_start(&r.loop, &ao, &eb);
	CHECK(r.api != NULL);

	CHECK_EQ(status_of(&r, "PATCH", "/network-interfaces/wan",
			   "{\"iface_id\":\"wan\",\"tx_rate_limiter\":{\"ops\":{\"size\":7,\"refill_time\":100}}}"),
		 204);
	struct rate_limiter_config c0, c1;
	net_device_get_rate_limit(&wan, NET_TX_QUEUE, &c1);
	net_device_get_rate_limit(&r.net, NET_TX_QUEUE, &c0);
	CHECK_EQ(c1.ops.size, 7);
	CHECK_EQ(c0.ops.size, 0);
	struct reply rp = call(&r, "GET", "/network-interfaces/wan", NULL);
	CHECK_EQ(rp.status, 200);
	CHECK(!strcmp(json_string_value(json_object_get(rp.json, "guest_mac")) ?: "",
		      "52:54:00:01:02:04"));
	reply_free(&rp);
	expect_fault(&r, 400, "PATCH", "/network-interfaces/eth1", "{\"iface_id\":\"eth1\"}",
		     "this instance has \"eth0\", \"wan\"");
	expect_fault(&r, 400, "PUT", "/mmds/config", "{\"network_interfaces\":[\"wan\"]}",
		     "MMDS was not started on \"wan\"");
	expect_fault(&r, 400, "PUT", "/mmds/config", "{\"network_interfaces\":[\"eth0\",\"x\"]}",
		     "network_interfaces[1] is not an interface");
	CHECK_EQ(status_of(&r, "PUT", "/mmds/config", "{\"network_interfaces\":[\"eth0\"]}"), 204);

	r.net.counters.tx_packets = 3;
	wan.counters.tx_packets = 4;
	char *line = api_metrics_line(r.api);
	json_t *m = line ? json_loads(line, 0, NULL) : NULL;
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(m, "net_eth0"), "tx_packets")), 3);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(m, "net_wan"), "tx_packets")), 4);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(m, "net"), "tx_packets")), 7);
	json_decref(m);
	free(line);
	net_device_destroy(&wan);
	be->ops->destroy(be);
	rig_down(&r);
}

static void test_http_level_errors_are_json(void)
{
	struct rig r;

	rig_up(&r, false);
	struct reply rp = raw(&r, "GARBAGE\r\n\r\n");
	CHECK_EQ(rp.status, 400);
	CHECK(json_string_value(json_object_get(rp.json, "fault_message")));
	reply_free(&rp);
	/* A body over the cap: 400, as Firecracker answers, naming the cap. */
	rp = raw(&r, "PUT /mmds HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n");
	CHECK_EQ(rp.status, 400);
	CHECK(strstr(json_string_value(json_object_get(rp.json, "fault_message")),
		     "Request payload is larger than the limit of 4096 bytes"));
	reply_free(&rp);
	CHECK_EQ(api_counters(r.api)->faults, 2);
	rig_down(&r);
}

/* Whether @path's last line has every HTTP server counter in "api_server". */
static bool last_metrics_line_has_http(const char *path)
{
	char line[8192], last[8192] = "";
	FILE *f = fopen(path, "r");
	bool all = true;

	while (f && fgets(line, sizeof(line), f))
		strcpy(last, line);
	if (f)
		fclose(f);
	json_t *m = json_loads(last, 0, NULL);
	json_t *srv = json_object_get(m, "api_server");
#define X(name, doc) all = all && json_is_integer(json_object_get(srv, #name));
	HTTP_SERVER_COUNTERS(X)
#undef X
	json_decref(m);
	return all;
}

/* On a socket, the HTTP server's counters (timeouts, the connection
 * limit) are in the metrics' "api_server" next to the API's own, the last
 * line at api_stop included. */
static void test_metrics_http_counters(void)
{
	struct event_loop loop;
	struct errbuf eb = { 0 };
	char path[64], mpath[64], req[320];

	snprintf(path, sizeof(path), "/tmp/kvmini-test-api-http-%d.sock", getpid());
	CHECK_EQ(event_loop_init(&loop), 0);
	struct api_opts ao = { .socket_path = path };
	struct api *api = api_start(&loop, &ao, &eb);
	CHECK(api != NULL);
	if (!api)
		return;
	char *line = api_metrics_line(api);
	json_t *m = line ? json_loads(line, 0, NULL) : NULL;
	json_t *srv = json_object_get(m, "api_server");
#define X(name, doc) CHECK(json_is_integer(json_object_get(srv, #name)));
	HTTP_SERVER_COUNTERS(X)
	API_COUNTERS(X)
#undef X
	json_decref(m);
	free(line);

	snprintf(mpath, sizeof(mpath), "/tmp/kvmini-test-api-http-metrics-%d", getpid());
	unlink(mpath);
	char body[128];
	snprintf(body, sizeof(body), "{\"metrics_path\":\"%s\"}", mpath);
	int n = snprintf(req, sizeof(req), "PUT /metrics HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s",
			 strlen(body), body);
	struct http_limits lim = { .max_header_bytes = 1024, .max_body_bytes = 1024 };
	struct http_conn *c = http_conn_new(&lim, api_http_handler, api_http_error, api);
	char *out = NULL;
	size_t len = 0;
	http_conn_feed(c, req, (size_t)n, &out, &len);
	CHECK(len > 12 && !memcmp(out, "HTTP/1.1 204", 12));
	free(out);
	http_conn_free(c);
	api_stop(api);
	CHECK(last_metrics_line_has_http(mpath));
	unlink(mpath);
	event_loop_destroy(&loop);
}

/* A drive's counters as virtio-blk names them: reads, bytes, refusals. */
static void visit_drive(void *opaque, const struct counter_sink *sink)
{
	uint64_t base = *(uint64_t *)opaque;

	counter_emit(sink, "", "rx_requests_read", base);
	counter_emit(sink, "", "tx_read_bytes", base * 4096);
	counter_emit(sink, "", "rx_requests_out_of_range", 1);
	counter_emit(sink, "", "rx_writes_read_only", 2);
}

static void visit_rng(void *opaque, const struct counter_sink *sink)
{
	counter_emit(sink, "", "tx_random_bytes", 640);
	counter_emit(sink, "", "tx_requests_filled", 10);
}

/* The balloon's own set, as the device keeps it, and its transport's. */
static void visit_balloon(void *opaque, const struct counter_sink *sink)
{
	counters_visit(&virtio_balloon_counter_set, opaque, "", sink);
	counter_emit(sink, "mmio_", "rx_device_activate_failed", 1);
}

static long metric(json_t *m, const char *group, const char *key)
{
	json_t *v = json_object_get(json_object_get(m, group), key);

	return json_is_integer(v) ? (long)json_integer_value(v) : -1;
}

/* Device sources in the metrics under Firecracker's names beside kvmini's:
 * "block_<id>" per drive and their sum "block", "entropy", and the net
 * objects' Firecracker names (sums where several counters make one). */
static void test_metrics_firecracker_names(void)
{
	uint64_t a = 3, b = 5;
	struct rig r;

	rig_up(&r, false);
	CHECK_EQ(api_add_source(r.api, &(struct api_counter_source){ "block_rootfs", visit_drive, &a }), 0);
	CHECK_EQ(api_add_source(r.api, &(struct api_counter_source){ "block_data", visit_drive, &b }), 0);
	CHECK_EQ(api_add_source(r.api, &(struct api_counter_source){ "entropy", visit_rng, NULL }), 0);
	struct virtio_balloon_counters bc = { .rx_inflate_chains = 7, .rx_deflate_chains = 2,
		.rx_stats_updates = 5, .rx_stats_invalid = 1, .rx_chains_invalid = 3,
		.rx_queue_poisoned = 1 };
	CHECK_EQ(api_add_source(r.api, &(struct api_counter_source){ "balloon", visit_balloon, &bc }),
		 0);
	char *line = api_metrics_line(r.api);
	json_t *m = json_loads(line, 0, NULL);
	CHECK(m != NULL);
	CHECK_EQ(metric(m, "block_rootfs", "read_count"), 3);
	CHECK_EQ(metric(m, "block_rootfs", "rx_requests_read"), 3);      /* kvmini's, kept */
	CHECK_EQ(metric(m, "block_rootfs", "invalid_reqs_count"), 3);
	CHECK_EQ(metric(m, "block_data", "read_bytes"), 5 * 4096);
	CHECK_EQ(metric(m, "block", "read_count"), 8);
	CHECK_EQ(metric(m, "block", "invalid_reqs_count"), 6);
	CHECK_EQ(metric(m, "block", "write_count"), -1);                  /* nothing counted: absent */
	CHECK_EQ(metric(m, "entropy", "entropy_bytes"), 640);
	CHECK_EQ(metric(m, "entropy", "entropy_event_count"), 10);
	CHECK_EQ(metric(m, "balloon", "activate_fails"), 1);
	CHECK_EQ(metric(m, "balloon", "inflate_count"), 7);
	CHECK_EQ(metric(m, "balloon", "deflate_count"), 2);
	CHECK_EQ(metric(m, "balloon", "stats_updates_count"), 5);
	CHECK_EQ(metric(m, "balloon", "stats_update_fails"), 1);
	CHECK_EQ(metric(m, "balloon", "event_fails"), 4);
	CHECK_EQ(metric(m, "balloon", "rx_inflate_pages"), 0);            /* kvmini's, kept */
	CHECK_EQ(metric(m, "net", "tx_packets_count"), metric(m, "net", "tx_packets"));
	CHECK_EQ(metric(m, "net_eth0", "tx_malformed_frames"),
		 metric(m, "net_eth0", "tx_chain_invalid") + metric(m, "net_eth0", "tx_hdr_invalid") +
		 metric(m, "net_eth0", "tx_frame_oversize"));
	json_decref(m);
	free(line);
	for (unsigned i = 5; i < API_MAX_SOURCES; i++)
		CHECK_EQ(api_add_source(r.api, &(struct api_counter_source){ "entropy", visit_rng, NULL }), 0);
	CHECK_EQ(api_add_source(r.api, &(struct api_counter_source){ "entropy", visit_rng, NULL }), -ENOSPC);
	rig_down(&r);
}

int main(void)
{
	RUN_TEST(test_instance_and_unknown_routes);
	RUN_TEST(test_vm_pause_resume);
	RUN_TEST(test_send_ctrl_alt_del);
	RUN_TEST(test_snapshot_routes);
	RUN_TEST(test_snapshot_load_route);
	RUN_TEST(test_preboot_routes);
	RUN_TEST(test_config_file);
	RUN_TEST(test_vsock_route);
	RUN_TEST(test_vm_config);
	RUN_TEST(test_drive_routes);
	RUN_TEST(test_logger);
	RUN_TEST(test_patch_rate_limiters);
	RUN_TEST(test_put_interface_matching);
	RUN_TEST(test_interface_body_errors);
	RUN_TEST(test_mmds_routes);
	RUN_TEST(test_metrics);
	RUN_TEST(test_balloon_routes);
	RUN_TEST(test_metrics_http_counters);
	RUN_TEST(test_metrics_firecracker_names);
	RUN_TEST(test_http_level_errors_are_json);
	RUN_TEST(test_two_interfaces);
	return CHECK_DONE();
}
