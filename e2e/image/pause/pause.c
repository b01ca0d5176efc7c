/*
 * weft's pause: the first process of every pod sandbox. It only has to exist,
 * so the pod's namespaces outlive its containers.
 *
 * As PID 1 of a PID namespace it gets no default signal actions: a signal
 * without a handler is dropped, so SIGINT and SIGTERM get handlers that end
 * it, or the kubelet would wait out the grace period and SIGKILL it. When the
 * pod shares one PID namespace, orphans are re-parented to it, and it reaps
 * them so that they do not pile up as zombies.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void reap(int sig)
{
	/* waitpid may clobber errno, which the interrupted code may be reading. */
	int saved = errno;

	(void)sig;
	/* One SIGCHLD can stand for several exits: collect all that are done. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static int handle(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;

	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

int main(void)
{
	if (handle(SIGINT, stop, 0) != 0 || handle(SIGTERM, stop, 0) != 0 ||
	    handle(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART) != 0)
		return 1;
	for (;;)
		pause();
}
