/*
 * PUT /logger: Firecracker's logger configuration before the VM starts.
 * {"log_path", "level", "show_level", "show_log_origin", "module"}, each
 * optional; what is given changes, the rest stays. The path is opened as
 * --log-path opens it (core/log.h): appended, non-blocking, a FIFO without
 * a reader taken read-write, so kvmini never stalls on it. kvmini's lines
 * always carry their level and have no origin or module to filter by:
 * show_level, show_log_origin and module are accepted and change nothing.
 */
#include <string.h>

#include "api/api_internal.h"
#include "core/log.h"

struct logger_req {
	const char *path;            /* NULL: unchanged */
	enum log_level level;
	bool level_given;
};

/* The VM exists: the logger is the process's, fixed from then on. */
static bool started(const struct api *api)
{
	const struct api_vm_ops *vm = api->opts.vm;

	return vm && vm->state && strcmp(vm->state(api->opts.vm_ctx), "Not started");
}

static bool parse_logger(json_t *body, struct logger_req *lr, struct http_response *resp)
{
	static const char *const keys[] = { "log_path", "level", "show_level", "show_log_origin",
		"module", NULL };
	const char *what = "the logger";
	bool ok = true, flag;

	if (!api_known_keys(body, keys, what, resp))
		return false;
	lr->path = api_get_string(body, "log_path", false, &ok, what, resp);
	const char *level = ok ? api_get_string(body, "level", false, &ok, what, resp) : NULL;
	if (ok)
		api_get_string(body, "module", false, &ok, what, resp);
	if (!ok || !api_get_bool(body, "show_level", &flag, what, resp) ||
	    !api_get_bool(body, "show_log_origin", &flag, what, resp))
		return false;
	if (level && log_level_parse(level, &lr->level) < 0) {
		/* Firecracker's serde message for its LevelFilter. */
		api_fault(resp, 400, "Invalid LevelFilter: \"%s\" is not Off, Error, Warn, Warning, "
			  "Info, Debug or Trace", level);
		return false;
	}
	lr->level_given = level != NULL;
	return true;
}

void api_logger_put(struct api *api, const char *id, const struct http_request *req,
		    struct http_response *resp)
{
	struct logger_req lr = { 0 };
	json_t *body;

	if (started(api)) {
		api_fault(resp, 400, API_AFTER_START);
		return;
	}
	body = api_body_object(req, resp);
	if (!body)
		return;
	if (parse_logger(body, &lr, resp)) {
		int r = lr.path ? log_set_path(lr.path) : 0;
		if (r < 0) {
			api_fault(resp, 400, "Failed to open target file: %s", strerror(-r));
		} else {
			if (lr.level_given)
				log_threshold = lr.level;
			api_no_content(resp);
		}
	}
	json_decref(body);
}
