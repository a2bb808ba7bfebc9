/* placeholder */
int module_register(void);
int module_register(void) { return 0; }
