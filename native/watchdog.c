/* watchdog: end the process with a message when a call into a library does not come back.
 *
 * libhdf5 can loop forever on a corrupt file while the calling thread holds Python's GIL, so no
 * Python timer or signal handler can run then. This is a plain pthread that needs no GIL: armed
 * with a deadline, a message and an exit code, it sleeps until the deadline or a disarm; at the
 * deadline, still armed, it writes the message to fd 2 and _exit()s with the code (atexit handlers
 * do not run: the CLI sweeps what a killed run left at its next start). One watchdog per process;
 * the thread starts at the first arm, and a forked child starts its own at its first arm. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nnc_kernels.h"

#define MSG_MAX 2048

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int started, armed, exit_code, atfork_set;
static struct timespec until; /* CLOCK_MONOTONIC */
static char msg[MSG_MAX];
static size_t msg_len;

static void *watch(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        if (!armed) {
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        const int rc = pthread_cond_timedwait(&cv, &mu, &until);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        const int due = now.tv_sec > until.tv_sec || (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec);
        if (armed && (rc == ETIMEDOUT || due) && due) {
            size_t off = 0;
            while (off < msg_len) {
                const ssize_t w = write(2, msg + off, msg_len - off);
                if (w <= 0) break;
                off += (size_t)w;
            }
            _exit(exit_code);
        }
    }
    return NULL;
}

static void in_child(void) { /* the thread did not come with the fork: start one when armed */
    pthread_mutex_init(&mu, NULL);
    started = 0;
    armed = 0;
}

int nnc_watchdog_arm(const char *message, int64_t len, double seconds, int code) {
    if (!message || len < 0 || len > MSG_MAX || !(seconds > 0.0) || seconds > 1e9 || code < 0 || code > 255)
        return NNC_EARG;
    pthread_mutex_lock(&mu);
    if (!started) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&cv, &attr);
        pthread_condattr_destroy(&attr);
        pthread_t th;
        pthread_attr_t ta;
        pthread_attr_init(&ta);
        pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
        const int rc = pthread_create(&th, &ta, watch, NULL);
        pthread_attr_destroy(&ta);
        if (rc != 0) {
            pthread_mutex_unlock(&mu);
            return NNC_ENOMEM;
        }
        if (!atfork_set) {
            pthread_atfork(NULL, NULL, in_child);
            atfork_set = 1;
        }
        started = 1;
    }
    memcpy(msg, message, (size_t)len);
    msg_len = (size_t)len;
    exit_code = code;
    clock_gettime(CLOCK_MONOTONIC, &until);
    const double whole = (double)(time_t)seconds;
    until.tv_sec += (time_t)seconds;
    until.tv_nsec += (long)((seconds - whole) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec += 1;
        until.tv_nsec -= 1000000000L;
    }
    armed = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return NNC_OK;
}

int nnc_watchdog_disarm(void) {
    pthread_mutex_lock(&mu);
    armed = 0;
    if (started) pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return NNC_OK;
}
