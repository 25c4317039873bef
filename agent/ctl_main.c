/* agent/ctl_main.c -- canopyctl's entry point (the work is in ctl.c). */
#include "agent/ctl.h"

int main(int argc, char **argv)
{
	return ctl_main(argc, argv, stdout, stderr);
}
