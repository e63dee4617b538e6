/* monitor.c - placeholder, replaced below */
#include "postgres.h"
#include "iceml_predict.h"
void
MonitorRecord(IcemlModel *m, const char *name, const float *band_1,
			  const float *band_2, int n, bool has_angle, float angle,
			  float prob, instr_time start)
{
}
void
MonitorInit(void)
{
}
