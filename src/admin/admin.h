/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * admin.h: the admin listener (SPEC.md, Admin API): libevent evhttp on
 * admin.listen, on the main thread, JSON in and out (jansson), bearer
 * tokens from admin.token_file.
 */
#ifndef SY_ADMIN_H
#define SY_ADMIN_H

#include "core/process.h"

extern const struct sy_main_service sy_admin_service;

#endif
