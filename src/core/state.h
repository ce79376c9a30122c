/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * state.h: the state file (SPEC.md, state_file): each service's active
 * slot, canary weight and rollout progress, written atomically (a
 * temporary file, fsync, rename) on every change and read back on start,
 * so a restart never flips traffic back. Main thread only.
 */
#ifndef SY_STATE_H
#define SY_STATE_H

#include <stdint.h>

#include "conf.h"

/*
 * Before the workers start: the file's split and rollouts win over the
 * configuration's. A file that cannot be understood is logged, kept
 * aside as FILE.corrupt-TIMESTAMP, and the configuration is used; one
 * that exists but cannot be read (permissions) stops the start: -1 with
 * err, since starting from the configuration could flip traffic back.
 */
int sy_state_restore(const struct sy_conf *conf, int64_t now_mono_ms, char *err,
                     size_t errlen);

/*
 * Writes every service's state now. A failure (a full disk) is logged
 * once, and the write is tried again by sy_state_retry until it succeeds:
 * traffic never waits for the disk.
 */
void sy_state_save(const struct sy_conf *conf);
void sy_state_retry(const struct sy_conf *conf);

#endif
