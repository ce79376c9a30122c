/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * input.c: lines from a file, a gzip file (a rotated log: found by its
 * magic bytes, not its name) or standard input, through one buffer. Plain
 * files are read with read(2), which is what following a live file needs;
 * zlib reads the rest. A line over LS_LINE_MAX is skipped to its newline
 * and reported once, so one bad line never ends the analysis.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logstat.h"

#define READ_CHUNK (1 << 20)
#define BUF_SIZE (READ_CHUNK + LS_LINE_MAX + 1)

int ls_input_open(struct ls_input *in, const char *name, bool follow)
{
    struct stat st;
    unsigned char magic[2];

    memset(in, 0, sizeof(*in));
    in->name = name;
    in->follow = follow;
    in->fd = -1;
    if (strcmp(name, "-") == 0) {
        /* zlib passes data that is not gzip through as it is. */
        in->gz = gzdopen(dup(STDIN_FILENO), "rb");
    } else {
        in->fd = open(name, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) {
            snprintf(in->error, sizeof(in->error), "%s: %s", name, strerror(errno));
            return -1;
        }
        if (fstat(in->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(in->error, sizeof(in->error), "%s: is a directory", name);
            close(in->fd);
            return -1;
        }
        in->dev = st.st_dev;
        in->ino = st.st_ino;
        if (pread(in->fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
            in->gz = gzdopen(in->fd, "rb");
            in->fd = -1;    /* gzclose closes it */
        }
    }
    if ((strcmp(name, "-") == 0 || in->fd < 0) && !in->gz) {
        snprintf(in->error, sizeof(in->error), "%s: cannot read: out of memory", name);
        return -1;
    }
    if (in->gz)
        gzbuffer(in->gz, 256 * 1024);
    in->buf = malloc(BUF_SIZE);
    if (!in->buf) {
        snprintf(in->error, sizeof(in->error), "%s: out of memory", name);
        ls_input_close(in);
        return -1;
    }
    return 0;
}

void ls_input_close(struct ls_input *in)
{
    if (in->gz)
        gzclose(in->gz);
    if (in->fd >= 0)
        close(in->fd);
    free(in->buf);
    in->gz = NULL;
    in->fd = -1;
    in->buf = NULL;
}

/* Reads more after buf[end]; 1 read, 0 end of input, -1 error. */
static int fill(struct ls_input *in)
{
    if (in->start > 0) {
        memmove(in->buf, in->buf + in->start, in->end - in->start);
        in->end -= in->start;
        in->start = 0;
    }
    size_t room = BUF_SIZE - 1 - in->end;
    if (room > READ_CHUNK)
        room = READ_CHUNK;
    ssize_t n;
    if (in->gz) {
        n = gzread(in->gz, in->buf + in->end, (unsigned)room);
        if (n < 0 || (n == 0 && !gzeof(in->gz))) {
            int code;
            const char *msg = gzerror(in->gz, &code);
            snprintf(in->error, sizeof(in->error), "%s: corrupt compressed data: %s", in->name,
                     code == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        if (n == 0) {
            /* gzeof after a truncated member: zlib reports it as an error. */
            int code;
            const char *msg = gzerror(in->gz, &code);
            if (code != Z_OK && code != Z_STREAM_END) {
                snprintf(in->error, sizeof(in->error), "%s: corrupt compressed data: %s",
                         in->name, msg);
                return -1;
            }
        }
    } else {
        do
            n = read(in->fd, in->buf + in->end, room);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            snprintf(in->error, sizeof(in->error), "%s: %s", in->name, strerror(errno));
            return -1;
        }
        in->offset += (uint64_t)n;
    }
    in->end += (size_t)n;
    return n > 0;
}

enum ls_line_result ls_input_next(struct ls_input *in, const char **line, size_t *len)
{
    for (;;) {
        char *begin = in->buf + in->start;
        size_t avail = in->end - in->start;
        char *nl = memchr(begin, '\n', avail);

        if (in->skipping) {
            if (!nl) {
                in->start = in->end;
            } else {
                in->start += (size_t)(nl - begin) + 1;
                in->skipping = false;
                in->line_no++;
                return LS_LINE_LONG;
            }
        } else if (nl && (size_t)(nl - begin) <= LS_LINE_MAX) {
            *line = begin;
            *len = (size_t)(nl - begin);
            in->start += *len + 1;
            in->line_no++;
            return LS_LINE_OK;
        } else if (avail > LS_LINE_MAX) {
            in->skipping = true;
            continue;
        }
        if (in->eof && !in->follow)
            goto at_end;
        int got = fill(in);
        if (got < 0)
            return LS_LINE_ERROR;
        if (got == 0) {
            in->eof = true;
            if (in->follow)
                return LS_LINE_END;     /* a partial line waits for its end */
            goto at_end;
        }
        in->eof = false;
    }

at_end:
    if (in->skipping) {
        in->skipping = false;
        in->line_no++;
        return LS_LINE_LONG;
    }
    if (in->start < in->end) {  /* a last line without its newline */
        *line = in->buf + in->start;
        *len = in->end - in->start;
        in->start = in->end;
        in->line_no++;
        return LS_LINE_OK;
    }
    return LS_LINE_END;
}

bool ls_input_rotated(struct ls_input *in)
{
    struct stat now, mine;

    if (in->fd < 0 || stat(in->name, &now) != 0)
        return false;   /* gone for now: logrotate's new file comes next */
    if (now.st_dev != in->dev || now.st_ino != in->ino)
        return true;
    if (fstat(in->fd, &mine) == 0 && (uint64_t)mine.st_size < in->offset) {
        lseek(in->fd, 0, SEEK_SET);     /* copytruncate */
        in->offset = 0;
        in->start = in->end = 0;
    }
    return false;
}
