#ifndef KLING_CLOCK_H
#define KLING_CLOCK_H

/* Monotonic seconds: deadlines must not jump when the wall clock is set. */
double kl_now(void);

#endif
