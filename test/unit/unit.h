/*
 * unit.h - a tiny test runner: TEST(name) { CHECK(cond, "why %d", x); }
 * and RUN(name) in main; the last line is "unit: N passed, M failed".
 */
#ifndef ICEML_UNIT_H
#define ICEML_UNIT_H

#include <stdio.h>

static int	unit_failures_in_test;
static int	unit_passed;
static int	unit_failed;

#define TEST(name) static void name(void)

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) \
		{ \
			unit_failures_in_test++; \
			if (unit_failures_in_test <= 5) \
			{ \
				printf("    %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
				printf(__VA_ARGS__); \
				printf("\n"); \
			} \
		} \
	} while (0)

#define RUN(name) \
	do { \
		unit_failures_in_test = 0; \
		name(); \
		if (unit_failures_in_test == 0) { unit_passed++; printf("ok   %s\n", #name); } \
		else { unit_failed++; printf("FAIL %s (%d failed checks)\n", #name, unit_failures_in_test); } \
		fflush(stdout); \
	} while (0)

#define UNIT_SUMMARY() \
	(printf("unit: %d passed, %d failed\n", unit_passed, unit_failed), unit_failed == 0 ? 0 : 1)

#endif							/* ICEML_UNIT_H */
