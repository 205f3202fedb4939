/*
 * Minimal test reporting shared by unit tests: every check prints nothing on
 * success and a FAIL line with its location otherwise; each test case prints
 * one "PASS: name" or "FAIL: name" line, which scripts/test.sh counts.
 */
#ifndef KVMINI_TESTS_CHECK_H
#define KVMINI_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_case_failed;
static int check_cases_passed, check_cases_failed;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "  check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
		check_case_failed = 1; \
	} \
} while (0)

#define CHECK_EQ(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) { \
		fprintf(stderr, "  check failed: %s == %s (%lld != %lld) (%s:%d)\n", \
			#a, #b, _a, _b, __FILE__, __LINE__); \
		check_case_failed = 1; \
	} \
} while (0)

#define RUN_TEST(fn) do { \
	check_case_failed = 0; \
	fn(); \
	if (check_case_failed) { check_cases_failed++; printf("FAIL: %s\n", #fn); } \
	else { check_cases_passed++; printf("PASS: %s\n", #fn); } \
	fflush(stdout); \
} while (0)

/* End of main(): the exit status says whether every case passed. */
#define CHECK_DONE() (printf("%d passed, %d failed\n", check_cases_passed, check_cases_failed), \
		      check_cases_failed ? 1 : 0)

#endif
