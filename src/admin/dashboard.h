/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * dashboard.h: the handlers of the live dashboard (dashboard.c), listed in
 * the admin route table (admin_api.c): the page and its files, the sign-in
 * that keeps the token in a cookie, and the JSON the page polls.
 */
#ifndef SY_ADMIN_DASHBOARD_H
#define SY_ADMIN_DASHBOARD_H

#include "admin_internal.h"

void sy_admin_dashboard_page(struct sy_admin_req *r);     /* GET / */
void sy_admin_dashboard_js(struct sy_admin_req *r);       /* GET /dashboard.js */
void sy_admin_dashboard_css(struct sy_admin_req *r);      /* GET /dashboard.css */
void sy_admin_dashboard_login(struct sy_admin_req *r);    /* POST /login (form body) */
void sy_admin_dashboard_logout(struct sy_admin_req *r);   /* POST /logout */
void sy_admin_dashboard_data(struct sy_admin_req *r);     /* GET /api/v1/dashboard */

#endif
