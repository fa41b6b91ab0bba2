/* The embedded example's program: shows that it runs inside the image, as a container.
 *
 * It prints the image's release file, its working directory, PID (1 in a fresh PID namespace), uid, hostname
 * and arguments. `hello exit N` exits with status N, so callers can check the exit code is forwarded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_file(const char *path)
{
    char line[256];
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("release: (no %s: not running inside the image?)\n", path);
        return;
    }
    while (fgets(line, sizeof line, f))
        printf("release: %s", line);
    fclose(f);
}

int main(int argc, char **argv)
{
    char cwd[4096], host[256];
    print_file("/etc/hello-release");
    printf("cwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    printf("pid: %d\n", (int)getpid());
    printf("uid: %d\n", (int)getuid());
    printf("hostname: %s\n", gethostname(host, sizeof host) == 0 ? host : "?");
    printf("greeting: %s\n", getenv("GREETING") ? getenv("GREETING") : "(unset)");
    printf("args:");
    for (int i = 1; i < argc; i++)
        printf(" [%s]", argv[i]);
    printf("\n");
    if (argc == 3 && strcmp(argv[1], "exit") == 0)
        return atoi(argv[2]);
    return 0;
}
